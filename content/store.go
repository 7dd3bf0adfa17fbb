package content

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	ctrcontent "github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Store is containerd's content store interface (core/content.Store):
// Info/Update/Walk/Delete for committed blobs, ReaderAt to read one,
// Writer to ingest one, Status/ListStatuses/Abort for ingests in flight.
// Kiln uses containerd's interface as is so that containerd and
// go-containerregistry helpers work on it unchanged.
type Store = ctrcontent.Store

// Open opens (creating if needed) the content store rooted at dir, which
// the worker sets to <root>/content.
//
// Open discards every ingest left in dir by an earlier process: nothing
// else may use dir while Open runs, and one process should hold one Store
// per dir (containerd's store locks refs in memory, not on disk).
func Open(dir string) (Store, error) {
	if dir == "" {
		return nil, fmt.Errorf("open content store: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	// A killed process leaves its partial writes in ingest/. They are never
	// resumed: the next writer of that blob starts over.
	if err := os.RemoveAll(filepath.Join(dir, "ingest")); err != nil {
		return nil, fmt.Errorf("open content store: discard stale ingests: %w", err)
	}
	st, err := local.NewStore(dir)
	if err != nil {
		return nil, fmt.Errorf("open content store %s: %w", dir, classify(err))
	}
	return &store{s: st}, nil
}

// store wraps containerd's local store so that its errors carry Kiln's
// error classes as well as containerd's.
type store struct {
	s ctrcontent.Store
}

var _ Store = (*store)(nil)

func (s *store) Info(ctx context.Context, dgst digest.Digest) (ctrcontent.Info, error) {
	info, err := s.s.Info(ctx, dgst)
	return info, classify(err)
}

func (s *store) Update(ctx context.Context, info ctrcontent.Info, fieldpaths ...string) (ctrcontent.Info, error) {
	info, err := s.s.Update(ctx, info, fieldpaths...)
	return info, classify(err)
}

func (s *store) Walk(ctx context.Context, fn ctrcontent.WalkFunc, filters ...string) error {
	return classify(s.s.Walk(ctx, fn, filters...))
}

func (s *store) Delete(ctx context.Context, dgst digest.Digest) error {
	return classify(s.s.Delete(ctx, dgst))
}

func (s *store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ctrcontent.ReaderAt, error) {
	ra, err := s.s.ReaderAt(ctx, desc)
	return ra, classify(err)
}

func (s *store) Status(ctx context.Context, ref string) (ctrcontent.Status, error) {
	st, err := s.s.Status(ctx, ref)
	return st, classify(err)
}

func (s *store) ListStatuses(ctx context.Context, filters ...string) ([]ctrcontent.Status, error) {
	sts, err := s.s.ListStatuses(ctx, filters...)
	return sts, classify(err)
}

func (s *store) Abort(ctx context.Context, ref string) error {
	return classify(s.s.Abort(ctx, ref))
}

func (s *store) Writer(ctx context.Context, opts ...ctrcontent.WriterOpt) (ctrcontent.Writer, error) {
	w, err := s.s.Writer(ctx, opts...)
	if err != nil {
		return nil, classify(err)
	}
	return &writer{w: w}, nil
}

// writer classifies the errors of Commit, the one Writer method whose
// errors callers branch on (already exists, digest mismatch).
type writer struct {
	w ctrcontent.Writer
}

var _ ctrcontent.Writer = (*writer)(nil)

func (w *writer) Write(p []byte) (int, error)        { return w.w.Write(p) }
func (w *writer) Close() error                       { return w.w.Close() }
func (w *writer) Digest() digest.Digest              { return w.w.Digest() }
func (w *writer) Status() (ctrcontent.Status, error) { return w.w.Status() }
func (w *writer) Truncate(size int64) error          { return w.w.Truncate(size) }

func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...ctrcontent.Opt) error {
	return classify(w.w.Commit(ctx, size, expected, opts...))
}
