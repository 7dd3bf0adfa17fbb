package file

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// linker is the fast path of a copy from a build context into an overlay
// snapshot: it hard-links context files into the snapshot's upper
// directory instead of copying their bytes. link(2) cannot cross the
// overlay mount, so the links go into the upper directory itself, after
// the action's other writes and with the overlay unmounted (the kernel
// does not support changing an upper directory under a mounted overlay).
//
// When the writable root is the upper directory itself (a snapshot with no
// parent: containerd bind-mounts its upper directory), links are made at
// once.
type linker struct {
	upper  string   // the overlay upper directory
	lowers []string // its lower directories, topmost first; none when immediate
	// immediate is set when the destination root is the upper directory.
	immediate bool
	// root is the destination root the action writes through (the mounted
	// overlay, or upper when immediate).
	root string

	pending map[string]string // destination path → context file
	order   []string
	linked  int // files linked (for tests and benchmarks)
}

func newLinker(root, upper string, lowers []string) *linker {
	return &linker{
		upper: upper, lowers: lowers, root: root,
		immediate: root == upper,
		pending:   map[string]string{},
	}
}

// take links (or schedules the link of) the context file src, with stat
// st, to the destination path dstRel whose current entry is existing (nil
// if none). It returns false when the file must be copied instead.
func (l *linker) take(src string, st *unix.Stat_t, dstRel string, existing os.FileInfo) bool {
	if existing != nil && existing.IsDir() {
		// A directory (perhaps from a lower layer) being replaced by a
		// file: let the overlay record that.
		return false
	}
	if l.immediate {
		p := hostPath(l.root, dstRel)
		if existing != nil {
			if err := os.Remove(p); err != nil {
				return false
			}
		}
		if err := os.Link(src, p); err != nil {
			return false
		}
		l.linked++
		return true
	}
	if _, ok := l.pending[dstRel]; !ok {
		l.order = append(l.order, dstRel)
	}
	l.pending[dstRel] = src
	return true
}

// forget drops scheduled links that a later write of the same action
// replaces: the path itself, and everything under it when it is (or
// becomes) a directory.
func (l *linker) forget(dstRel string, _ os.FileInfo) {
	if len(l.pending) == 0 {
		return
	}
	delete(l.pending, dstRel)
	prefix := dstRel + "/"
	for p := range l.pending {
		if dstRel == "" || strings.HasPrefix(p, prefix) {
			delete(l.pending, p)
		}
	}
}

// forgetExact drops a scheduled link at dstRel only: a directory takes
// that path, and links scheduled below it stay valid.
func (l *linker) forgetExact(dstRel string) {
	delete(l.pending, dstRel)
}

// hasPending reports whether links wait for the overlay to be unmounted.
func (l *linker) hasPending() bool { return len(l.pending) > 0 }

// flush makes the scheduled links in the upper directory. The overlay must
// not be mounted. A link that fails (another filesystem) becomes a copy.
func (l *linker) flush() error {
	for _, rel := range l.order {
		src, ok := l.pending[rel]
		if !ok {
			continue
		}
		if err := l.linkOne(src, rel); err != nil {
			return err
		}
	}
	l.pending = map[string]string{}
	l.order = l.order[:0]
	return nil
}

func (l *linker) linkOne(src, rel string) error {
	dir, _ := splitRel(rel)
	if err := l.upperParents(dir); err != nil {
		return err
	}
	p := hostPath(l.upper, rel)
	if fi, err := os.Lstat(p); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("link %s: a directory is in the way in the upper directory", rel)
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	if err := os.Link(src, p); err == nil {
		l.linked++
		return nil
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	st := statOf(fi)
	return copyRegular(p, src, attrs{uid: 0, gid: 0, perm: st.Mode & modePerm, mtime: st.Mtim}, false)
}

// upperParents makes sure the directory rel (resolved in the merged view,
// so without links) exists in the upper directory, creating what is
// missing with the owner, mode, times and xattrs the visible lower
// directory has, as an overlay copy-up would.
func (l *linker) upperParents(rel string) error {
	if rel == "" {
		return nil
	}
	cur := ""
	for _, c := range strings.Split(rel, "/") {
		cur = join(cur, c)
		p := hostPath(l.upper, cur)
		fi, err := os.Lstat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("link into /%s: not a directory in the upper directory", cur)
			}
			continue
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		low, lfi := l.lowerDir(cur)
		a := attrs{perm: 0o755, mtime: now()}
		if lfi != nil {
			st := statOf(lfi)
			a = attrs{uid: int(st.Uid), gid: int(st.Gid), perm: st.Mode & modePerm, mtime: st.Mtim}
		}
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		if err := setOwnerMode(p, a); err != nil {
			return err
		}
		if low != "" {
			if err := copyXattrs(p, low); err != nil {
				return err
			}
		}
		if err := setTimes(p, a.mtime); err != nil {
			return err
		}
	}
	return nil
}

// lowerDir returns the directory rel of the topmost lower directory that
// has it with every element a real directory. The caller knows the path
// is a visible directory of the merged view, so the topmost lower holding
// it is the one the overlay shows.
func (l *linker) lowerDir(rel string) (string, os.FileInfo) {
	for _, low := range l.lowers {
		cur := ""
		ok := true
		var fi os.FileInfo
		for _, c := range strings.Split(rel, "/") {
			cur = join(cur, c)
			var err error
			fi, err = os.Lstat(hostPath(low, cur))
			if err != nil || !fi.IsDir() {
				ok = false
				break
			}
		}
		if ok {
			return hostPath(low, rel), fi
		}
	}
	return "", nil
}

// splitRel splits a relative path into its parent ("" for the root) and
// last element.
func splitRel(rel string) (string, string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}
