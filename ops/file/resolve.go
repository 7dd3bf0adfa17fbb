package file

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// maxSymlinks bounds the links followed while resolving one path, as the
// kernel's ELOOP limit does.
const maxSymlinks = 255

// errEscape is the cause of every "outside the root" error.
var errEscape = errors.New("path leaves its root")

// cleanRel turns a user-given source or destination path into a clean
// slash-separated path relative to its root ("" for the root itself). A
// path that climbs above the root with ".." is an error: "/../x" and "../x"
// do not quietly become "x".
func cleanRel(p string) (string, error) {
	p = strings.TrimLeft(filepath.ToSlash(p), "/")
	if p == "" {
		return "", nil
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errEscape
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

// join joins slash-separated relative paths, "" being the root.
func join(elem ...string) string {
	var parts []string
	for _, e := range elem {
		if e != "" {
			parts = append(parts, e)
		}
	}
	return strings.Join(parts, "/")
}

// hostPath is the host path of the relative path rel under root.
func hostPath(root, rel string) string {
	if rel == "" {
		return root
	}
	return root + "/" + rel
}

// resolveStrict follows every symbolic link in rel (relative to root) and
// returns the resolved relative path, which contains no links. Unlike
// securejoin, which clamps, it reports a path that leaves root (through
// ".." or an absolute link target) as errEscape: a build context is a
// directory of the client's machine, and a link in it to "/etc" means the
// client's /etc, which is never ours to read. Components that do not exist
// are kept lexically.
func resolveStrict(root, rel string) (string, error) {
	todo := strings.Split(rel, "/")
	var cur []string
	links := 0
	missing := false
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return "", errEscape
			}
			cur = cur[:len(cur)-1]
			continue
		}
		if missing {
			cur = append(cur, c)
			continue
		}
		p := hostPath(root, join(append(cur, c)...))
		fi, err := os.Lstat(p)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				return "", err
			}
			missing = true
			cur = append(cur, c)
			continue
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = append(cur, c)
			continue
		}
		if links++; links > maxSymlinks {
			return "", fmt.Errorf("%s: %w", join(append(cur, c)...), syscall.ELOOP)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if path.IsAbs(filepath.ToSlash(target)) {
			return "", errEscape
		}
		todo = append(strings.Split(filepath.ToSlash(target), "/"), todo...)
	}
	return join(cur...), nil
}

// resolveChroot follows every symbolic link in rel as the kernel would in a
// container whose root is root: absolute targets start at root, ".." stops
// at it. It returns the resolved relative path.
func resolveChroot(root, rel string) (string, error) {
	p, err := securejoin.SecureJoin(root, "/"+rel)
	if err != nil {
		return "", err
	}
	r, err := filepath.Rel(root, p)
	if err != nil {
		return "", err
	}
	if r == "." {
		return "", nil
	}
	return filepath.ToSlash(r), nil
}

// tree is a directory tree that paths resolve in: a source (read) or the
// destination root (written).
type tree struct {
	dir string // host directory, clean and absolute
	// strict makes links that leave dir errors (build contexts) instead of
	// resolving them as in a chroot (filesystems: images, stages, the
	// destination).
	strict bool
	// where names the tree in errors: "the build context".
	where string
	// layers, for a snapshot view, are its layer directories, topmost
	// first: the fast path hard-links a file from the layer that holds it.
	layers []string
}

// resolve follows every link in rel.
func (t *tree) resolve(rel string) (string, error) {
	if t.strict {
		return resolveStrict(t.dir, rel)
	}
	return resolveChroot(t.dir, rel)
}

// resolveParent follows the links in rel's parent directories but not in
// its last element, and returns the resolved relative path.
func (t *tree) resolveParent(rel string) (string, error) {
	if rel == "" {
		return "", nil
	}
	dir, base := path.Split(rel)
	pd, err := t.resolve(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return "", err
	}
	return join(pd, base), nil
}

// host returns the host path of the resolved relative path rel.
func (t *tree) host(rel string) string { return hostPath(t.dir, rel) }
