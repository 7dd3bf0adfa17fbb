package file

import (
	"context"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/executor/user"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
)

// errMultiDest is Docker's message for several sources into a file path.
const errMultiDest = "When using COPY with more than one source file, the destination must be a directory and end with a /"

// copy runs one COPY or ADD action.
func (x *execution) copy(ctx context.Context, ca *copyAction) error {
	err := x.doCopy(ctx, ca)
	if err != nil {
		return fmt.Errorf("%s: %w", ca.desc, err)
	}
	return nil
}

func (x *execution) doCopy(ctx context.Context, ca *copyAction) error {
	src, err := x.source(ctx, ca.Input)
	if err != nil {
		return err
	}
	d, err := x.root()
	if err != nil {
		return err
	}

	// Expand every source first: errors about sources come before any
	// write, and the count decides whether the destination must be a
	// directory. A wildcard that matches nothing is no error, even alone
	// (as in BuildKit: "COPY requirements*.txt ./" is how Dockerfiles
	// copy optional files).
	groups := make([][]match, 0, len(ca.Src))
	nMatches := 0
	for _, s := range ca.Src {
		ms, err := src.expand(s, ca.Parents)
		if err != nil {
			return src.classify(s, err)
		}
		groups = append(groups, ms)
		nMatches += len(ms)
	}

	dstRel, err := cleanRel(ca.Dest)
	if err != nil {
		return errdefs.Invalidf("destination %q is outside the root", ca.Dest)
	}
	dirDest := isDirPath(ca.Dest) || ca.Parents
	if (len(ca.Src) > 1 || nMatches > 1) && !dirDest {
		return errdefs.Invalidf("%s", errMultiDest)
	}
	if !dirDest && dstRel != "" {
		// A destination that is a link is followed, also when it
		// dangles, as in BuildKit: the copy lands where it points
		// (inside the root).
		r, err := d.resolve(dstRel)
		if err != nil {
			return err
		}
		dstRel = r
		if fi, err := os.Lstat(d.host(r)); err == nil && fi.IsDir() {
			dirDest = true
		}
	}

	c := &copier{ctx: ctx, src: src, dst: d, chmod: ca.chmod, exclude: ca.exclude, dirPerm: 0o755}
	c.keepXattrs = !src.strict
	// COPY from a filesystem (a stage, an image) keeps the owners; from a
	// build context the files become root's, as in BuildKit.
	c.keepOwner = ca.Chown == nil && !src.strict
	if ca.Chown != nil {
		if c.owner.uid, c.owner.gid, err = resolveOwner(d.dir, ca.Chown); err != nil {
			return err
		}
	}
	if ca.Timestamp != nil {
		t := specTime(*ca.Timestamp)
		c.mtime = &t
	}
	// The directories the copy creates (the destination and its missing
	// parents) are 0755, or take an octal --chmod, as in BuildKit.
	if m, ok := octalMode(ca.Chmod); ok {
		c.dirPerm = m
	}
	parentAttrs := newDirAttrs{uid: c.owner.uid, gid: c.owner.gid, perm: c.dirPerm, mtime: c.mtime}
	lk := x.linkerFor(ca, src, d)
	c.link = lk
	c.linkedInodes = map[inode]int{}

	for gi, ms := range groups {
		// Hard links are kept within one source, as in BuildKit: "COPY a
		// b /d/" of two linked files makes two files.
		c.inodes, c.group = map[inode]string{}, gi
		for _, m := range ms {
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
			if err := x.copyMatch(ctx, ca, c, m, dstRel, dirDest, parentAttrs); err != nil {
				return err
			}
		}
	}
	if lk != nil && lk.hasPending() {
		// The links go into the upper directory with the overlay
		// unmounted; the next action mounts it again.
		if err := x.unmountRoot(); err != nil {
			return err
		}
		if err := lk.flush(); err != nil {
			return err
		}
		return d.finishDirs(lk.upper)
	}
	return d.finishDirs(d.dir)
}

// octalMode returns the mode of an octal --chmod.
func octalMode(s string) (uint32, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v) & modePerm, true
}

// isDirPath reports whether a destination names a directory by its form:
// a trailing "/" or "/.", or the root.
func isDirPath(p string) bool {
	return strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || p == "." || p == ""
}

// copyMatch copies one matched source path.
func (x *execution) copyMatch(ctx context.Context, ca *copyAction, c *copier, m match, dstRel string, dirDest bool, pa newDirAttrs) error {
	src := c.src
	real := m.real
	fi, err := os.Lstat(src.host(real))
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 && ca.FollowSymlinks {
		if real, fi, err = src.follow(displayPath(m), m); err != nil {
			return err
		}
	}
	if m.rel != "" && c.exclude != nil {
		if skip, _, err := c.excluded(path.Base(m.rel), patternmatcher.MatchInfo{}); err != nil || skip {
			return err
		}
	}
	srcPath := src.host(real)

	if ca.Unpack && fi.Mode().IsRegular() {
		done, err := x.unpack(ctx, ca, c, srcPath, dstRel, dirDest, m, pa)
		if done || err != nil {
			return err
		}
	}

	if !dirDest {
		// One source onto a path: the file (or the directory's
		// contents) becomes that path.
		parent, base := splitRel(dstRel)
		pr, err := c.dst.mkdirAll(parent, pa)
		if err != nil {
			return err
		}
		if base == "" {
			return c.copy(srcPath, fi, pr, true)
		}
		return c.copy(srcPath, fi, join(pr, base), true)
	}

	dir, err := c.dst.mkdirAll(dstRel, pa)
	if err != nil {
		return err
	}
	if ca.Parents {
		keepDir, keepBase := splitRel(m.keep)
		kd, err := x.parentsDirs(c, m, dir, keepDir)
		if err != nil {
			return err
		}
		if keepBase == "" {
			return c.copy(srcPath, fi, kd, true)
		}
		return c.copy(srcPath, fi, join(kd, keepBase), false)
	}
	if fi.IsDir() {
		return c.copy(srcPath, fi, dir, true)
	}
	return c.copy(srcPath, fi, join(dir, path.Base(m.rel)), false)
}

// parentsDirs makes the directories of the kept path keepDir of a
// --parents match under dir, with the metadata of the source directories
// they copy, and returns the resolved destination of keepDir.
func (x *execution) parentsDirs(c *copier, m match, dir, keepDir string) (string, error) {
	if keepDir == "" {
		return dir, nil
	}
	skip := strings.TrimSuffix(strings.TrimSuffix(m.rel, m.keep), "/")
	cur := dir
	srcRel := skip
	for _, e := range strings.Split(keepDir, "/") {
		srcRel = join(srcRel, e)
		r, err := c.src.resolve(srcRel)
		if err != nil {
			return "", c.src.classify(m.rel, err)
		}
		fi, err := os.Lstat(c.src.host(r))
		if err != nil {
			return "", err
		}
		st := statOf(fi)
		if cur, err = c.makeDir(c.src.host(r), st, join(cur, e), false); err != nil {
			return "", err
		}
	}
	return cur, nil
}

// linkerFor returns the fast path for a copy, or nil when the copy must
// copy bytes: not from a build context or a snapshot whose layers it can
// see, ADD, owner/mode/time changes, no overlay upper directory, or a
// layout it cannot write.
func (x *execution) linkerFor(ca *copyAction, src *tree, d *dest) *linker {
	// ADD extracts archives through the mount; a link scheduled for the
	// same path would wrongly win over it, so ADD copies.
	if x.op.opts.noLink || ca.Unpack || ca.Chown != nil || ca.chmod != nil || ca.Timestamp != nil {
		return nil
	}
	// Build contexts are only ever replaced by rename; committed snapshot
	// layers never change. Both can lend their files' inodes.
	if _, ok := x.inputs[ca.Input].(ops.Dir); !(ok && src.strict) && src.layers == nil {
		return nil
	}
	upper := x.act.UpperDir()
	lowers, ok := overlayLayout(x.act.Mounts(), upper)
	if !ok {
		return nil
	}
	return newLinker(d.dir, upper, lowers)
}

// resolveOwner resolves --chown in the destination root filesystem. A
// numeric user without a group also gets that number as its group, as in
// Docker; a user name gets its primary group.
func resolveOwner(rootfs string, ch *graph.Chown) (int, int, error) {
	spec := ch.User
	if ch.Group != "" {
		spec += ":" + ch.Group
	}
	u, err := user.Resolve(rootfs, spec)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return 0, 0, fmt.Errorf("--chown=%s: %w", spec, err)
		}
		return 0, 0, err
	}
	uid, gid := int(u.UID), int(u.GID)
	if ch.Group == "" {
		if n, err := strconv.ParseUint(ch.User, 10, 32); err == nil {
			gid = int(n)
		}
	}
	return uid, gid, nil
}

// displayPath is how errors name a match.
func displayPath(m match) string {
	if m.rel == "" {
		return "."
	}
	return m.rel
}

// timeOr returns *t, or the current time.
func timeOr(t *unix.Timespec) unix.Timespec {
	if t != nil {
		return *t
	}
	return now()
}
