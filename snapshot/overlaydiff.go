package snapshot

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	cfs "github.com/containerd/continuity/fs"
	"github.com/containerd/continuity/sysx"
)

// overlayChanges reports to fn the changes that the overlay upper
// directory upper makes on top of base (the parent's merged tree): every
// entry in upper is an addition or modification, a 0/0 character device
// is a deletion, and an opaque directory deletes what base had below it
// (reported as the path <dir>/.wh..opq, which containerd's ChangeWriter
// turns into .wh..wh..opq). base is consulted only for paths found in
// upper; its tree is never walked.
//
// This replaces continuity's fs.DiffDirChanges, which fails with ENOTDIR
// when a file of the parent became a directory, follows the parent's
// symlinks when it looks paths up there, and reports whiteouts with
// nothing beneath them as character devices.
func overlayChanges(ctx context.Context, base, upper string, fn cfs.ChangeFunc) error {
	// inBase[d] is true when base has directory d as a real directory
	// (no symlink on the way) whose entries upper does not hide.
	inBase := map[string]bool{string(filepath.Separator): true}
	return filepath.WalkDir(upper, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := context.Cause(ctx); err != nil {
			return err
		}
		rel, err := filepath.Rel(upper, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		p := string(filepath.Separator) + rel
		fi, err := d.Info()
		if err != nil {
			return err
		}
		// Looking p up in base is safe when its parent is a real
		// directory there: Lstat follows no symlink at the last step.
		var bfi os.FileInfo
		if inBase[filepath.Dir(p)] {
			bfi, err = os.Lstat(filepath.Join(base, rel))
			if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				return err
			}
		}

		if isWhiteout(fi) {
			if bfi == nil {
				return nil // nothing beneath to delete
			}
			return fn(cfs.ChangeKindDelete, p, fi, nil)
		}

		kind := cfs.ChangeKind(cfs.ChangeKindAdd)
		if bfi != nil {
			kind = cfs.ChangeKindModify
		}
		if !fi.IsDir() {
			return fn(kind, p, fi, nil)
		}

		opaque, err := isOpaque(path)
		if err != nil {
			return err
		}
		baseDir := bfi != nil && bfi.IsDir()
		inBase[p] = baseDir && !opaque
		// A directory present only because something below it changed
		// needs no entry of its own: ChangeWriter adds the parents of
		// what it writes.
		if baseDir && !opaque && sameDir(fi, bfi) {
			return nil
		}
		if err := fn(kind, p, fi, nil); err != nil {
			return err
		}
		if opaque && baseDir {
			return fn(cfs.ChangeKindDelete, filepath.Join(p, ".wh..opq"), nil, nil)
		}
		return nil
	})
}

// isWhiteout reports whether fi is an overlay whiteout: a 0/0 character
// device.
func isWhiteout(fi os.FileInfo) bool {
	if fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

// isOpaque reports whether the upper directory path hides its lower
// counterparts (trusted.overlay.opaque, or user.overlay.opaque when the
// overlay was mounted with userxattr).
func isOpaque(path string) (bool, error) {
	for _, name := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		v, err := sysx.LGetxattr(path, name)
		switch {
		case err == nil:
			if string(v) == "y" {
				return true, nil
			}
		case errors.Is(err, sysx.ENODATA), errors.Is(err, syscall.ENOTSUP):
		default:
			return false, err
		}
	}
	return false, nil
}

// sameDir reports whether two directories have the same mode, owner and
// modification time.
func sameDir(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Mode() == b.Mode() && sa.Uid == sb.Uid && sa.Gid == sb.Gid &&
		sa.Mtim == sb.Mtim
}
