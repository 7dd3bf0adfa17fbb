package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/snapshot"
)

// copier copies entries of a source tree into the destination for one
// action. The zero owner and mode rules are COPY's: owner 0:0, mode and
// mtime kept.
type copier struct {
	ctx context.Context
	src *tree
	dst *dest

	// keepOwner keeps the source's owner (merge, COPY from a filesystem);
	// otherwise owner is used.
	keepOwner bool
	owner     struct{ uid, gid int }
	// dirPerm is the mode of the directories the copy creates for its
	// destination (not copies of source directories).
	dirPerm uint32
	// stack replaces a link in the way of a directory instead of
	// following it: layers stacking (merge), where a directory of an
	// upper layer hides a link of a lower one, as in BuildKit.
	stack bool
	chmod modeFunc       // nil: mode kept
	mtime *unix.Timespec // nil: mtime kept
	// keepXattrs copies extended attributes (filesystem sources).
	keepXattrs bool
	exclude    *patternmatcher.PatternMatcher
	// link, if set, hard-links eligible regular files instead of copying.
	link *linker

	// inodes maps a hard-linked source file to the destination path of
	// its first copy, so that the copy keeps the link; one map per source.
	inodes map[inode]string
	// group numbers the source being copied; linkedInodes remembers which
	// source the fast path linked an inode for, so that two sources do
	// not end up as one inode.
	group        int
	linkedInodes map[inode]int
}

type inode struct{ dev, ino uint64 }

// attrsFor returns the metadata the copy of an entry with stat st gets.
func (c *copier) attrsFor(st *unix.Stat_t, isDir bool) attrs {
	a := attrs{uid: c.owner.uid, gid: c.owner.gid, perm: st.Mode & modePerm, mtime: st.Mtim}
	if c.keepOwner {
		a.uid, a.gid = int(st.Uid), int(st.Gid)
	}
	if c.chmod != nil {
		a.perm = c.chmod(a.perm, isDir)
	}
	if c.mtime != nil {
		a.mtime = *c.mtime
	}
	return a
}

// excluded reports whether the source entry at rel (relative to the copied
// source) is left out, and the match state for its children.
func (c *copier) excluded(rel string, parent patternmatcher.MatchInfo) (bool, patternmatcher.MatchInfo, error) {
	if c.exclude == nil || rel == "" {
		return false, patternmatcher.MatchInfo{}, nil
	}
	ok, mi, err := c.exclude.MatchesUsingParentResults(rel, parent)
	if err != nil {
		return false, mi, fmt.Errorf("match exclude patterns against %s: %w", rel, err)
	}
	return ok, mi, nil
}

// copy copies the source entry at host path srcPath (stat fi) to the
// destination path dstRel, whose parent is resolved and exists. A
// directory's contents are merged into an existing directory there;
// anything else replaces what is there. With top set, dstRel is the
// action's own destination directory: an existing one keeps its metadata.
func (c *copier) copy(srcPath string, fi os.FileInfo, dstRel string, top bool) error {
	if !fi.IsDir() {
		return c.copyNonDir(srcPath, fi, dstRel)
	}
	st := statOf(fi)
	ensure := c.dirMaker(func() (string, error) { return "", nil }, srcPath, st, dstRel, top)
	return c.copyDir(srcPath, ensure, "", patternmatcher.MatchInfo{}, false)
}

// dirMaker returns a function that makes (once) the destination directory
// name under the directory parent makes, and returns its resolved path.
func (c *copier) dirMaker(parent func() (string, error), srcPath string, st *unix.Stat_t, name string, top bool) func() (string, error) {
	var (
		done bool
		real string
		err  error
	)
	return func() (string, error) {
		if !done {
			done = true
			var p string
			if p, err = parent(); err == nil {
				real, err = c.makeDir(srcPath, st, join(p, name), top)
			}
		}
		return real, err
	}
}

// copyDir copies the contents of the source directory srcPath into the
// directory ensure makes. A directory the exclude patterns match (lazy) is
// still entered when there are "!" patterns, but only made if something
// inside it is copied.
func (c *copier) copyDir(srcPath string, ensure func() (string, error), exclRel string, mi patternmatcher.MatchInfo, lazy bool) error {
	if !lazy {
		if _, err := ensure(); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(srcPath)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := c.ctx.Err(); err != nil {
			return context.Cause(c.ctx)
		}
		childSrc := srcPath + "/" + e.Name()
		childExcl := join(exclRel, e.Name())
		skip, childMI, err := c.excluded(childExcl, mi)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(childSrc)
		if err != nil {
			return err
		}
		if skip && !(fi.IsDir() && c.exclude.Exclusions()) {
			continue
		}
		if fi.IsDir() {
			st := statOf(fi)
			if st == nil {
				return fmt.Errorf("stat %s: no raw stat", childSrc)
			}
			child := c.dirMaker(ensure, childSrc, st, e.Name(), false)
			if err := c.copyDir(childSrc, child, childExcl, childMI, skip); err != nil {
				return err
			}
			continue
		}
		parent, err := ensure()
		if err != nil {
			return err
		}
		if err := c.copyNonDir(childSrc, fi, join(parent, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// copyNonDir copies a source entry that is not a directory to dstRel,
// replacing whatever is there.
func (c *copier) copyNonDir(srcPath string, fi os.FileInfo, dstRel string) error {
	st := statOf(fi)
	if st == nil {
		return fmt.Errorf("stat %s: no raw stat", srcPath)
	}
	dstPath := c.dst.host(dstRel)
	existing, err := c.dst.lookup(dstRel)
	if err != nil {
		return err
	}
	if fi.Mode().IsRegular() && c.link != nil && c.linkable(st) {
		if linkSrc, ok := c.linkSource(srcPath); ok && c.link.take(linkSrc, st, dstRel, existing) {
			return nil
		}
	}
	if c.link != nil {
		c.link.forget(dstRel, existing)
	}
	if existing != nil {
		if err := removeExisting(dstPath, existing); err != nil {
			return err
		}
	}
	a := c.attrsFor(st, false)
	switch {
	case fi.Mode().IsRegular():
		if st.Nlink > 1 {
			key := inode{dev: st.Dev, ino: st.Ino}
			if first, ok := c.inodes[key]; ok {
				if err := os.Link(c.dst.host(first), dstPath); err == nil {
					return nil
				}
			}
			c.inodes[key] = dstRel
		}
		return copyRegular(dstPath, srcPath, a, c.keepXattrs)
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(srcPath)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dstPath); err != nil {
			return err
		}
		if err := os.Lchown(dstPath, a.uid, a.gid); err != nil {
			return err
		}
		if c.keepXattrs {
			if err := copyXattrs(dstPath, srcPath); err != nil {
				return err
			}
		}
		return setTimes(dstPath, a.mtime)
	case fi.Mode()&(os.ModeDevice|os.ModeCharDevice|os.ModeNamedPipe) != 0:
		if err := unix.Mknod(dstPath, st.Mode&unix.S_IFMT|a.perm&modePerm, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dstPath, Err: err}
		}
		if err := setOwnerMode(dstPath, a); err != nil {
			return err
		}
		return setTimes(dstPath, a.mtime)
	default:
		// Sockets are not copied, as in Docker: they only mean something
		// to the process that made them.
		return nil
	}
}

// linkable reports whether the fast path may lend the source inode st to
// the destination: its owner is the one the copy gives, and no other
// source of the action was linked to it.
func (c *copier) linkable(st *unix.Stat_t) bool {
	if !c.keepOwner && (int(st.Uid) != c.owner.uid || int(st.Gid) != c.owner.gid) {
		return false
	}
	key := inode{dev: st.Dev, ino: st.Ino}
	if g, ok := c.linkedInodes[key]; ok && g != c.group {
		return false
	}
	if c.linkedInodes != nil {
		c.linkedInodes[key] = c.group
	}
	return true
}

// makeDir makes the destination directory dstRel for the source directory
// srcPath (stat st), or reuses the directory there, and returns its
// resolved path. A link there to a directory (inside the destination root)
// is followed, so that copying "lib/x" onto an image whose /lib links to
// /usr/lib lands in /usr/lib. A reused directory takes the source's
// metadata unless it is the action's own destination (top).
func (c *copier) makeDir(srcPath string, st *unix.Stat_t, dstRel string, top bool) (string, error) {
	a := c.attrsFor(st, true)
	if top {
		// The action's own destination, when the copy creates it, is a
		// new directory (0755 or the octal --chmod, the copy's owner),
		// not a copy of the source directory: as in BuildKit.
		a.uid, a.gid, a.perm = c.owner.uid, c.owner.gid, c.dirPerm
	}
	existing, err := c.dst.lookup(dstRel)
	if err != nil {
		return "", err
	}
	if c.link != nil {
		// A directory takes dstRel: a file link scheduled there is
		// replaced, the links scheduled inside it stay (several sources
		// copied into one directory).
		c.link.forgetExact(dstRel)
	}
	switch {
	case existing == nil:
	case existing.IsDir():
		if top {
			return dstRel, nil
		}
		if err := setOwnerMode(c.dst.host(dstRel), a); err != nil {
			return "", err
		}
		c.dst.dirTimes = append(c.dst.dirTimes, dirTime{rel: dstRel, t: a.mtime})
		return dstRel, nil
	case existing.Mode()&os.ModeSymlink != 0 && c.stack:
		if err := os.Remove(c.dst.host(dstRel)); err != nil {
			return "", err
		}
	case existing.Mode()&os.ModeSymlink != 0:
		r, err := c.dst.resolve(dstRel)
		if err != nil {
			return "", err
		}
		if fi, err := os.Lstat(c.dst.host(r)); err == nil && fi.IsDir() {
			return r, nil
		}
		if err := os.Remove(c.dst.host(dstRel)); err != nil {
			return "", err
		}
	default:
		if err := removeExisting(c.dst.host(dstRel), existing); err != nil {
			return "", err
		}
	}
	p := c.dst.host(dstRel)
	if err := os.Mkdir(p, 0o700); err != nil {
		return "", err
	}
	if err := setOwnerMode(p, a); err != nil {
		return "", err
	}
	if c.keepXattrs {
		if err := copyXattrs(p, srcPath); err != nil {
			return "", err
		}
	}
	c.dst.dirTimes = append(c.dst.dirTimes, dirTime{rel: dstRel, t: a.mtime})
	return dstRel, nil
}

// linkSource returns the file the fast path may hard-link for srcPath: the
// path itself in a build context, the layer file behind it in a snapshot
// view (a path in a mounted overlay cannot be linked across the mount).
func (c *copier) linkSource(srcPath string) (string, bool) {
	if c.src.layers == nil {
		return srcPath, true
	}
	rel, err := filepath.Rel(c.src.dir, srcPath)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", false
	}
	return snapshot.LayerFile(c.src.layers, rel)
}
