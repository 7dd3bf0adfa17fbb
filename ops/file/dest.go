package file

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// dest is the writable root filesystem the actions of one op change. Paths
// resolve their links inside it, as in a container with that root; the last
// element of a path the op writes is never followed.
type dest struct {
	tree
	// dirTimes are the directories whose times the current action sets
	// once it has written everything inside them (writing a child changes
	// a directory's mtime).
	dirTimes []dirTime
}

type dirTime struct {
	rel string
	t   unix.Timespec
}

func newDest(dir string) *dest {
	return &dest{tree: tree{dir: dir, where: "the destination"}}
}

// newDirAttrs is what mkdirAll gives the directories it creates.
type newDirAttrs struct {
	uid, gid int
	perm     uint32
	mtime    *unix.Timespec // nil: left at the time of creation
}

// mkdirAll makes sure the directory rel (clean, relative, links not yet
// resolved) exists and returns its resolved path. Directories it creates
// get a's owner and mode. An existing non-directory in the way is an error.
func (d *dest) mkdirAll(rel string, a newDirAttrs) (string, error) {
	cur := ""
	if rel == "" {
		return "", nil
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := d.resolve(join(cur, c))
		if err != nil {
			return "", err
		}
		fi, err := os.Lstat(d.host(next))
		switch {
		case err == nil && fi.IsDir():
		case err == nil:
			return "", fmt.Errorf("/%s is not a directory", next)
		case errors.Is(err, os.ErrNotExist):
			// A dangling link resolves to its (missing) target; its own
			// parents may be missing too.
			if pd, _ := path.Split(next); pd != "" && pd != cur+"/" {
				if _, err := d.mkdirAll(strings.TrimSuffix(pd, "/"), a); err != nil {
					return "", err
				}
			}
			if err := d.mkdir(next, a); err != nil {
				return "", err
			}
		default:
			return "", err
		}
		cur = next
	}
	return cur, nil
}

// mkdir creates the directory rel (resolved, not existing) with a.
func (d *dest) mkdir(rel string, a newDirAttrs) error {
	p := d.host(rel)
	if err := os.Mkdir(p, 0o700); err != nil {
		return err
	}
	if err := setOwnerMode(p, attrs{uid: a.uid, gid: a.gid, perm: a.perm}); err != nil {
		return err
	}
	if a.mtime != nil {
		d.dirTimes = append(d.dirTimes, dirTime{rel: rel, t: *a.mtime})
	}
	return nil
}

// lookup returns the entry at the resolved path rel, or nil if there is
// none.
func (d *dest) lookup(rel string) (os.FileInfo, error) {
	fi, err := os.Lstat(d.host(rel))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return fi, err
}

// finishDirs sets the times of the directories recorded in dirTimes,
// deepest first, in the tree rooted at root (the mounted filesystem, or
// the overlay upper directory the links went to). Paths are resolved in
// root again: the action may have replaced a directory by a link.
func (d *dest) finishDirs(root string) error {
	t := tree{dir: root}
	for i := len(d.dirTimes) - 1; i >= 0; i-- {
		dt := d.dirTimes[i]
		rel, err := t.resolve(dt.rel)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(t.host(rel))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			continue
		}
		if err := setTimes(t.host(rel), dt.t); err != nil {
			return err
		}
	}
	d.dirTimes = d.dirTimes[:0]
	return nil
}
