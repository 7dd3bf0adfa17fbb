package file

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
)

// owner resolves an optional --chown in the mounted root d.
func owner(d *dest, ch *graph.Chown) (int, int, error) {
	if ch == nil {
		return 0, 0, nil
	}
	return resolveOwner(d.dir, ch)
}

// mkdir runs a MkdirAction.
func (x *execution) mkdir(a *graph.MkdirAction) error {
	desc := "mkdir " + a.Path
	if err := x.doMkdir(a); err != nil {
		return fmt.Errorf("%s: %w", desc, err)
	}
	return nil
}

func (x *execution) doMkdir(a *graph.MkdirAction) error {
	d, err := x.root()
	if err != nil {
		return err
	}
	rel, err := cleanRel(a.Path)
	if err != nil {
		return errdefs.Invalidf("path is outside the root")
	}
	uid, gid, err := owner(d, a.Chown)
	if err != nil {
		return err
	}
	var ts = timestampOf(a.Timestamp)
	if rel == "" {
		if a.MakeParents {
			return nil
		}
		return errdefs.WithClass(errdefs.ErrAlreadyExists, fmt.Errorf("/ exists"))
	}
	parent, base := splitRel(rel)
	pr, err := x.parentDir(d, parent, a.MakeParents, newDirAttrs{uid: uid, gid: gid, perm: 0o755, mtime: ts})
	if err != nil {
		return err
	}
	target := join(pr, base)
	fi, err := d.lookup(target)
	if err != nil {
		return err
	}
	if fi != nil {
		if a.MakeParents {
			if r, err := d.resolve(target); err == nil {
				if rfi, err := os.Lstat(d.host(r)); err == nil && rfi.IsDir() {
					return d.finishDirs(d.dir)
				}
			}
		}
		return errdefs.WithClass(errdefs.ErrAlreadyExists, fmt.Errorf("file exists"))
	}
	if err := d.mkdir(target, newDirAttrs{uid: uid, gid: gid, perm: a.Mode & modePerm, mtime: ts}); err != nil {
		return err
	}
	return d.finishDirs(d.dir)
}

// parentDir returns the resolved directory parent, creating it (and its
// parents) when create is set; otherwise it must exist.
func (x *execution) parentDir(d *dest, parent string, create bool, a newDirAttrs) (string, error) {
	if create {
		return d.mkdirAll(parent, a)
	}
	r, err := d.resolve(parent)
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(d.host(r))
	if err != nil {
		if os.IsNotExist(err) {
			return "", errdefs.NotFoundf("parent directory /%s does not exist", parent)
		}
		return "", err
	}
	if !fi.IsDir() {
		return "", errdefs.Invalidf("/%s is not a directory", parent)
	}
	return r, nil
}

// mkfile runs a MkfileAction (COPY <<EOF). Missing parent directories are
// created, as COPY creates them.
func (x *execution) mkfile(a *graph.MkfileAction) error {
	if err := x.doMkfile(a); err != nil {
		return fmt.Errorf("mkfile %s: %w", a.Path, err)
	}
	return nil
}

func (x *execution) doMkfile(a *graph.MkfileAction) error {
	d, err := x.root()
	if err != nil {
		return err
	}
	rel, err := cleanRel(a.Path)
	if err != nil || rel == "" {
		return errdefs.Invalidf("not a file path")
	}
	uid, gid, err := owner(d, a.Chown)
	if err != nil {
		return err
	}
	ts := timestampOf(a.Timestamp)
	parent, base := splitRel(rel)
	pr, err := d.mkdirAll(parent, newDirAttrs{uid: uid, gid: gid, perm: 0o755, mtime: ts})
	if err != nil {
		return err
	}
	target := join(pr, base)
	fi, err := d.lookup(target)
	if err != nil {
		return err
	}
	if fi != nil {
		if fi.IsDir() {
			return errdefs.Invalidf("is a directory")
		}
		if err := os.Remove(d.host(target)); err != nil {
			return err
		}
	}
	at := attrs{uid: uid, gid: gid, perm: a.Mode & modePerm, mtime: timeOr(ts)}
	if err := writeRegular(d.host(target), bytes.NewReader(a.Data), at, ""); err != nil {
		return err
	}
	return d.finishDirs(d.dir)
}

// rm runs an RmAction. The last element is never followed: removing a link
// removes the link.
func (x *execution) rm(a *graph.RmAction) error {
	if err := x.doRm(a); err != nil {
		return fmt.Errorf("rm %s: %w", a.Path, err)
	}
	return nil
}

func (x *execution) doRm(a *graph.RmAction) error {
	d, err := x.root()
	if err != nil {
		return err
	}
	rel, err := cleanRel(a.Path)
	if err != nil {
		return errdefs.Invalidf("path is outside the root")
	}
	if rel == "" {
		return errdefs.Invalidf("cannot remove the root directory")
	}
	var targets []string
	if a.AllowWildcard && hasMeta(rel) {
		ms, err := d.expand(rel, false)
		if err != nil {
			return err
		}
		for _, m := range ms {
			targets = append(targets, m.real)
		}
	} else {
		r, err := d.resolveParent(rel)
		if err != nil {
			return err
		}
		fi, err := d.lookup(r)
		if err != nil {
			return err
		}
		if fi != nil {
			targets = append(targets, r)
		}
	}
	if len(targets) == 0 {
		if a.AllowNotFound {
			return nil
		}
		return errdefs.NotFoundf("no such file or directory")
	}
	for _, t := range targets {
		if t == "" {
			return errdefs.Invalidf("cannot remove the root directory")
		}
		if err := os.RemoveAll(d.host(t)); err != nil {
			return err
		}
	}
	return nil
}

// symlink runs a SymlinkAction. The target is stored as given; an existing
// entry at Newpath is an error, as for ln -s.
func (x *execution) symlink(a *graph.SymlinkAction) error {
	if err := x.doSymlink(a); err != nil {
		return fmt.Errorf("symlink %s -> %s: %w", a.Newpath, a.Oldpath, err)
	}
	return nil
}

func (x *execution) doSymlink(a *graph.SymlinkAction) error {
	d, err := x.root()
	if err != nil {
		return err
	}
	rel, err := cleanRel(a.Newpath)
	if err != nil || rel == "" {
		return errdefs.Invalidf("not a link path")
	}
	if a.Oldpath == "" {
		return errdefs.Invalidf("empty link target")
	}
	parent, base := splitRel(rel)
	pr, err := d.mkdirAll(parent, newDirAttrs{perm: 0o755})
	if err != nil {
		return err
	}
	target := join(pr, base)
	if fi, err := d.lookup(target); err != nil {
		return err
	} else if fi != nil {
		return errdefs.WithClass(errdefs.ErrAlreadyExists, fmt.Errorf("file exists"))
	}
	if err := os.Symlink(a.Oldpath, d.host(target)); err != nil {
		return err
	}
	if a.Chown != nil {
		uid, gid, err := owner(d, a.Chown)
		if err != nil {
			return err
		}
		if err := os.Lchown(d.host(target), uid, gid); err != nil {
			return err
		}
	}
	if ts := timestampOf(a.Timestamp); ts != nil {
		tv := []unix.Timeval{unix.NsecToTimeval(unix.TimespecToNsec(*ts)), unix.NsecToTimeval(unix.TimespecToNsec(*ts))}
		if err := unix.Lutimes(d.host(target), tv); err != nil {
			return err
		}
	}
	return nil
}
