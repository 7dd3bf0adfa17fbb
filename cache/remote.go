package cache

import (
	"context"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/progress"
)

// The interfaces below are how the solver talks to caches outside the
// daemon's own store: shared caches (a Redis index over a blob store) and
// per-build imports and exports (--cache-from, --cache-to). They live here,
// below both the solver and the implementations in cache/remote, so that
// neither imports the other. docs/dev/cache.md describes the design.

// RemoteCache is a cache the solver consults after the local store.
type RemoteCache interface {
	// Name says where a hit came from in progress ("redis", "registry").
	Name() string
	// Lookup returns the cache's result for key without downloading it,
	// or an error in the errdefs.ErrNotFound class. Other errors are
	// reported as warnings and the lookup counts as a miss.
	Lookup(ctx context.Context, key digest.Digest) (Hit, error)
}

// Hit is a result a remote cache holds for a key.
type Hit interface {
	// Load imports the result into the worker (downloading and unpacking
	// what the daemon lacks, every blob checked against its digest) and
	// returns a handle on it. The solver calls it only when the result
	// must be materialised; a hit nobody needs is never downloaded.
	Load(ctx context.Context) (ops.Ref, error)
}

// Exporter writes the results of a build's steps to a cache outside the
// daemon. The solver begins one session per build and exporter.
type Exporter interface {
	Begin(ctx context.Context, b Build) (ExportSession, error)
}

// Build describes the build an export session serves.
type Build struct {
	// Ref is the build's reference (its history id), "" when unknown.
	Ref string
	// Progress receives the session's warnings and steps.
	Progress progress.Writer
}

// ExportSession exports one build's steps.
type ExportSession interface {
	// Add hands over a step's result as soon as it is known (executed or
	// found in a cache). It must not block on I/O: sessions queue the
	// work and do it in the background. The session owns s.Ref and
	// releases it.
	Add(s ExportStep)
	// Finish waits until every step added is exported and writes what is
	// written once per build (a cache manifest). It is called once, after
	// the build succeeded; its error fails the build (sessions that must
	// not fail a build report warnings instead and return nil).
	Finish(ctx context.Context) error
	// Discard ends the session of a build that failed or was cancelled:
	// nothing more is written once per build, queued work may still
	// complete (shared caches keep the records of steps that finished).
	// It may be called after Finish, as a no-op.
	Discard()
}

// ExportStep is one step's result as an exporter sees it.
type ExportStep struct {
	// Record holds the key and its components. Exporters that leave the
	// daemon keep only digests from it (see docs/dev/cache.md).
	Record Record
	// Ref is a handle on the local result, owned by the session; nil when
	// the result is a remote hit that was not materialised.
	Ref ops.Ref
	// Hit is the remote hit the result came from, nil for a local result.
	// Exporters copy a hit's blobs from where they are instead of
	// materialising it.
	Hit Hit
	// Source is "" for a step that ran, else the cache it came from
	// ("local", or a RemoteCache's Name).
	Source string
	// InResult says the step's result is one of the layers of a build
	// result (mode=min exports only these).
	InResult bool
}
