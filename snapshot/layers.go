package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"
)

// ViewLayers returns the layer directories of a read-only snapshot view,
// topmost first: the lowerdirs of an overlay without an upper directory,
// or the one directory of a bind mount. It declines other layouts
// (userxattr whiteouts, id-mapped mounts, several mounts).
func ViewLayers(mounts []mount.Mount) []string {
	if len(mounts) != 1 {
		return nil
	}
	m := mounts[0]
	switch m.Type {
	case "bind", "rbind":
		return []string{filepath.Clean(m.Source)}
	case "overlay":
	default:
		return nil
	}
	var lowers []string
	for _, opt := range m.Options {
		switch {
		case strings.HasPrefix(opt, "lowerdir="):
			lowers = strings.Split(strings.TrimPrefix(opt, "lowerdir="), ":")
		case strings.HasPrefix(opt, "upperdir="), opt == "userxattr",
			strings.HasPrefix(opt, "uidmap="), strings.HasPrefix(opt, "gidmap="), strings.HasPrefix(opt, "X-containerd."):
			return nil
		}
	}
	for i, l := range lowers {
		if !filepath.IsAbs(l) {
			return nil
		}
		lowers[i] = filepath.Clean(l)
	}
	return lowers
}

// LayerFile finds the layer file behind the regular file rel (slash
// separated, relative to the view's root) of an overlay of layers (topmost
// first), so that it can be hard-linked rather than copied. It follows
// overlay's rules: the topmost layer holding the path wins; a whiteout or
// an opaque directory above hides the layers below. It answers false
// whenever it is not sure (a symlink or a non-directory on the way, a
// special file), and the caller copies instead.
func LayerFile(layers []string, rel string) (string, bool) {
	parts := strings.Split(strings.Trim(filepath.ToSlash(rel), "/"), "/")
	if len(parts) == 0 || parts[0] == "" {
		return "", false
	}
	for _, layer := range layers {
		p, found, hidden := lookInLayer(layer, parts)
		if hidden {
			return "", false
		}
		if found {
			return p, p != ""
		}
	}
	return "", false
}

// lookInLayer looks for parts in one layer. found means the layer decides
// the path (p is the regular file, or "" when the layer has something the
// fast path does not take); hidden means the layer hides the path in the
// layers below it.
func lookInLayer(layer string, parts []string) (p string, found, hidden bool) {
	cur := layer
	for i, c := range parts {
		next := filepath.Join(cur, c)
		var st unix.Stat_t
		if err := unix.Lstat(next, &st); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				return "", true, false
			}
			// Not in this layer: an opaque directory on the way hides
			// the lower layers.
			if i > 0 && opaqueLayerDir(cur) {
				return "", false, true
			}
			return "", false, false
		}
		mode := st.Mode & unix.S_IFMT
		if mode == unix.S_IFCHR && st.Rdev == 0 {
			return "", false, true // a whiteout
		}
		if i < len(parts)-1 {
			if mode != unix.S_IFDIR {
				return "", true, false // a file or link shadows the path
			}
			cur = next
			continue
		}
		if mode != unix.S_IFREG {
			return "", true, false
		}
		return next, true, false
	}
	return "", true, false
}

// opaqueLayerDir reports whether an overlay layer directory is marked
// opaque (trusted.overlay.opaque: the layouts ViewLayers accepts).
func opaqueLayerDir(dir string) bool {
	var b [1]byte
	n, err := unix.Lgetxattr(dir, "trusted.overlay.opaque", b[:])
	return err == nil && n == 1 && b[0] == 'y'
}
