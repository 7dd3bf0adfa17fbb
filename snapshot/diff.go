package snapshot

import (
	"context"
	"errors"
	"fmt"
	"github.com/kiln-build/kiln/internal/iox"
	"io"
	"os"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/continuity/fs"
	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
)

// DiffOpt configures Diff.
type DiffOpt func(*diffOptions)

type diffOptions struct {
	clamp *time.Time // no entry newer than this
	fixed *time.Time // every entry exactly this
}

// WithSourceDateEpoch clamps every entry's modification time to t: newer
// entries get t, older ones keep theirs (SOURCE_DATE_EPOCH as the
// reproducible-builds spec and BuildKit's rewrite-timestamp use it).
// Whiteouts carry the Unix epoch.
func WithSourceDateEpoch(t time.Time) DiffOpt {
	return func(o *diffOptions) { t := t.UTC(); o.clamp = &t }
}

// WithFixedModTime sets every entry's modification time, whiteouts
// included, to t.
func WithFixedModTime(t time.Time) DiffOpt {
	return func(o *diffOptions) { t := t.UTC(); o.fixed = &t }
}

// Diff writes to w the uncompressed OCI layer tar of the snapshot key (a
// committed name, or an active key that nothing writes to meanwhile)
// against its parent, and returns the tar's digest (the layer's diffID)
// and size.
//
// With an overlay snapshotter (sn implements UpperDirer) it walks only the
// snapshot's upper directory, looking up in the parent just the paths found
// there; otherwise it compares the snapshot's tree with its parent's.
// Entries come in lexical path order with numeric owners, no user or
// group names, no access or change times, and seconds-precision
// modification times; user.* xattrs and security.capability are kept.
func Diff(ctx context.Context, sn snapshots.Snapshotter, key string, w io.Writer, opts ...DiffOpt) (digest.Digest, int64, error) {
	var o diffOptions
	for _, opt := range opts {
		opt(&o)
	}
	info, err := sn.Stat(ctx, key)
	if err != nil {
		return "", 0, fmt.Errorf("diff snapshot %s: %w", key, classify(err))
	}
	if info.Kind == snapshots.KindView {
		return "", 0, errdefs.Invalidf("diff snapshot %s: a view has no changes of its own", key)
	}
	dw := iox.NewDigestWriter(w)
	err = diff(ctx, sn, info, dw, o)
	if err != nil {
		return "", 0, fmt.Errorf("diff snapshot %s: %w", key, err)
	}
	return dw.Digest(), dw.Size(), nil
}

func diff(ctx context.Context, sn snapshots.Snapshotter, info snapshots.Info, w io.Writer, o diffOptions) error {
	if ud, ok := sn.(UpperDirer); ok {
		upper, err := ud.UpperDir(ctx, info.Name)
		switch {
		case err == nil:
			return withBase(ctx, sn, info.Parent, func(base string) error {
				return writeLayer(ctx, w, upper, o, true, func(cw *archive.ChangeWriter) error {
					return overlayChanges(ctx, base, upper, cw.HandleChange)
				})
			})
		case !errors.Is(err, errdefs.ErrUnimplemented):
			return err
		}
	}
	// No upper directory: compare the two trees (archive.WriteDiff's
	// method, through the same tar normalisation as above).
	withTarget := func(fn func(string) error) error { return WithView(ctx, sn, info.Name, fn) }
	if info.Kind == snapshots.KindActive {
		withTarget = func(fn func(string) error) error { return WithActive(ctx, sn, info.Name, fn) }
	}
	return withBase(ctx, sn, info.Parent, func(base string) error {
		return withTarget(func(dir string) error {
			return writeLayer(ctx, w, dir, o, false, func(cw *archive.ChangeWriter) error {
				return fs.Changes(ctx, base, dir, cw.HandleChange)
			})
		})
	})
}

// withBase calls fn with the tree of the committed snapshot parent
// mounted read-only, or with an empty directory if parent is "".
func withBase(ctx context.Context, sn snapshots.Snapshotter, parent string, fn func(dir string) error) (err error) {
	if parent != "" {
		return WithView(ctx, sn, parent, fn)
	}
	root := mountRootOf(sn)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	empty, err := os.MkdirTemp(root, "empty-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.Remove(empty)) }()
	return fn(empty)
}

// writeLayer runs produce, which feeds filesystem changes to a containerd
// ChangeWriter over source, and pipes the tar it makes through normalize
// into w.
func writeLayer(ctx context.Context, w io.Writer, source string, o diffOptions, overlay bool, produce func(*archive.ChangeWriter) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		cw := archive.NewChangeWriter(pw, source)
		err := produce(cw)
		if err == nil {
			err = cw.Close()
		}
		pw.CloseWithError(err) // nil: the reader sees io.EOF
		done <- err
	}()
	err := normalize(ctx, pr, w, source, o, overlay)
	// Unblock the producer if normalize stopped early, then wait for it:
	// the snapshot stays mounted until it is done.
	pr.CloseWithError(errors.New("layer tar reader stopped"))
	perr := <-done
	if err != nil {
		return err
	}
	return perr
}
