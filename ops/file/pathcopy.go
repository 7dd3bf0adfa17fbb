package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/continuity/fs"
	"github.com/moby/patternmatcher"
	fscopy "github.com/tonistiigi/fsutil/copy"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
)

// pathCopy runs a PathCopyAction: LLB's copy rules, which are those of
// github.com/tonistiigi/fsutil/copy, the library that does the copying
// here as it does in BuildKit (paths resolve inside their roots through
// github.com/containerd/continuity/fs.RootPath).
func (x *execution) pathCopy(ctx context.Context, a *graph.PathCopyAction) error {
	src, err := x.source(ctx, a.Input)
	if err != nil {
		return fmt.Errorf("copy %s %s: %w", a.Src, a.Dest, err)
	}
	d, err := x.root()
	if err != nil {
		return fmt.Errorf("copy %s %s: %w", a.Src, a.Dest, err)
	}
	if err := doPathCopy(ctx, a, src.dir, d.dir); err != nil {
		return fmt.Errorf("copy %s %s: %w", a.Src, a.Dest, hideRoots(err, src.dir, d.dir))
	}
	return nil
}

func doPathCopy(ctx context.Context, a *graph.PathCopyAction, srcRoot, dstRoot string) error {
	srcPath, destPath := llbPath(a.Src), llbPath(a.Dest)
	if !a.CreateDestPath {
		p, err := fs.RootPath(dstRoot, path.Join("/", a.Dest))
		if err != nil {
			return err
		}
		if _, err := os.Lstat(filepath.Dir(p)); err != nil {
			return errdefs.NotFoundf("the parent directory of %s does not exist", a.Dest)
		}
	}
	for _, rp := range a.RequiredPaths {
		p, err := fs.RootPath(srcRoot, path.Join("/", rp))
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err != nil {
			return errdefs.NotFoundf("%q: not found", rp)
		}
	}
	var chown fscopy.Chowner
	var owner *fscopy.User
	if a.Chown != nil {
		uid, gid, err := resolveOwner(dstRoot, a.Chown)
		if err != nil {
			return err
		}
		owner = &fscopy.User{UID: uid, GID: gid}
		chown = func(*fscopy.User) (*fscopy.User, error) { return owner, nil }
	}
	var mtime *time.Time
	if a.Timestamp != nil {
		t := time.Unix(*a.Timestamp, 0)
		mtime = &t
	}
	ci := fscopy.CopyInfo{
		Chown: chown, Utime: mtime, ModeStr: a.ModeStr,
		CopyDirContents: a.DirContents, FollowLinks: a.FollowSymlinks,
		IncludePatterns: a.Include, ExcludePatterns: a.Exclude,
		AlwaysReplaceExistingDestPaths: a.ReplaceExisting,
	}
	if a.Mode != nil && a.ModeStr == "" {
		m := int(*a.Mode)
		ci.Mode = &m
	}
	opts := []fscopy.Opt{fscopy.WithCopyInfo(ci), fscopy.AllowXAttrErrors}

	matches := []string{srcPath}
	if a.Wildcard {
		var err error
		if matches, err = fscopy.ResolveWildcards(srcRoot, srcPath, a.FollowSymlinks); err != nil {
			return err
		}
		if len(matches) == 0 {
			if a.AllowEmptyWildcard {
				return nil
			}
			return errdefs.NotFoundf("%s: not found", a.Src)
		}
	}
	for _, s := range matches {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if a.Unpack {
			done, err := unpackPath(ctx, srcRoot, s, dstRoot, destPath, owner, mtime)
			if err != nil {
				return err
			}
			if done {
				continue
			}
		}
		if err := fscopy.Copy(ctx, srcRoot, s, dstRoot, destPath, opts...); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return errdefs.WithClass(errdefs.ErrNotFound, err)
			}
			return err
		}
	}
	return nil
}

// checkPathCopy checks what New can: paths and patterns.
func checkPathCopy(a *graph.PathCopyAction) error {
	desc := fmt.Sprintf("copy %s %s", a.Src, a.Dest)
	if a.Src == "" || a.Dest == "" {
		return errdefs.Invalidf("%s: a copy needs a source and a destination", desc)
	}
	for _, list := range [][]string{a.Include, a.Exclude} {
		for _, p := range list {
			if _, err := patternmatcher.New([]string{p}); err != nil {
				return errdefs.Invalidf("%s: pattern %q: %v", desc, p, err)
			}
		}
	}
	return nil
}

// unpackPath extracts the source file s into the directory dest when it is
// a tar archive, as ADD does; it reports false for anything else. As in
// BuildKit, an owner applies to every entry and the timestamp only to the
// destination directory when it is created.
func unpackPath(ctx context.Context, srcRoot, s, dstRoot, dest string, owner *fscopy.User, mtime *time.Time) (bool, error) {
	p, err := fs.RootPath(srcRoot, s)
	if err != nil {
		return false, err
	}
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		return false, nil
	}
	r, ok, err := openArchive(ctx, p)
	if err != nil || !ok {
		return false, err
	}
	defer r.Close()
	dir, err := fs.RootPath(dstRoot, dest)
	if err != nil {
		return true, err
	}
	var ch fscopy.Chowner
	var ids *[2]int
	if owner != nil {
		ch = func(*fscopy.User) (*fscopy.User, error) { return owner, nil }
		ids = &[2]int{owner.UID, owner.GID}
	}
	if _, err := fscopy.MkdirAll(dir, 0o755, ch, mtime); err != nil {
		return true, err
	}
	if err := extract(ctx, r, dir, ids, nil); err != nil {
		return true, fmt.Errorf("unpack %s: %w", s, err)
	}
	return true, r.Close()
}

// llbPath cleans an LLB path to an absolute one, keeping a trailing "/" or
// "/." (they mean "a directory").
func llbPath(s string) string {
	c := path.Join("/", s)
	switch {
	case strings.HasSuffix(s, "/."):
		if c != "/" {
			c += "/"
		}
		c += "."
	case strings.HasSuffix(s, "/") && c != "/":
		c += "/"
	}
	return c
}

// hideRoots rewrites the host directories of the op's mounts out of an
// error's paths, so that messages show paths as the build sees them.
func hideRoots(err error, roots ...string) error {
	trim := func(p string) string {
		for _, r := range roots {
			if r != "" && (p == r || strings.HasPrefix(p, r+"/")) {
				return "/" + strings.TrimLeft(strings.TrimPrefix(p, r), "/")
			}
		}
		return p
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		pe.Path = trim(pe.Path)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		le.Old, le.New = trim(le.Old), trim(le.New)
	}
	msg := err.Error()
	for _, r := range roots {
		if r != "" && strings.Contains(msg, r) {
			// A library error that names a host path some other way.
			return errdefs.WithClass(classOf(err), errors.New(strings.ReplaceAll(msg, r, "")))
		}
	}
	return err
}

// classOf returns the errdefs class of err; by default invalid argument
// (a copy that fails on what its inputs hold is the definition's problem).
func classOf(err error) error {
	for _, c := range []error{errdefs.ErrNotFound, errdefs.ErrInvalidArgument, errdefs.ErrAlreadyExists, errdefs.ErrPermissionDenied, errdefs.ErrCanceled} {
		if errors.Is(err, c) {
			return c
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return errdefs.ErrNotFound
	}
	return errdefs.ErrInvalidArgument
}
