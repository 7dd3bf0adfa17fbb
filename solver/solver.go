// Package solver runs build graphs: it computes each vertex's cache key,
// looks it up in the caches, runs the misses in parallel (executions bounded
// by max-parallelism), deduplicates identical steps across concurrent
// builds, records results and streams progress. docs/dev/solver.md describes
// the design.
//
// The solver sees the machine only through the Worker interface and steps
// only through ops.Op; it imports graph, ops, cache, progress, session and
// core.
package solver

import (
	"context"
	"runtime"

	"golang.org/x/sync/semaphore"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/internal/flight"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/session"
)

// Worker is the machine side the solver needs.
type Worker interface {
	// Op returns the executable form of v for the build of sess.
	Op(v *graph.Vertex, sess session.Session) (ops.Op, error)
	// Load returns the stored result id (from a cache record). It returns
	// an error in the errdefs.ErrNotFound class if the result is gone.
	Load(ctx context.Context, id string) (ops.Ref, error)
	// Checksum computes the content digest of the selected paths of ref
	// (all of it when selectors is empty).
	Checksum(ctx context.Context, ref ops.Ref, selectors []string) (ops.Content, error)
}

// RemoteCache is a cache the solver consults after the local store (a shared
// index, an imported registry cache). See cache.RemoteCache.
type RemoteCache = cache.RemoteCache

// Exporter receives the steps of each build as they finish, so shared
// caches are filled as the build goes and not only at its end. See
// cache.Exporter.
type Exporter = cache.Exporter

// Solver runs builds. It is safe for concurrent use by many builds.
type Solver struct {
	worker Worker
	store  cache.Store
	slots  *semaphore.Weighted
	remote []RemoteCache
	export []Exporter

	jobs *flight.Group[ops.Ref] // steps in flight, by cache key
}

// Option configures a Solver.
type Option func(*Solver)

// WithMaxParallelism bounds the number of steps that run a container at
// once. n <= 0 means runtime.NumCPU().
func WithMaxParallelism(n int) Option {
	return func(s *Solver) {
		if n <= 0 {
			n = runtime.NumCPU()
		}
		s.slots = semaphore.NewWeighted(int64(n))
	}
}

// WithRemoteCaches adds daemon-wide remote caches, consulted in order after
// the local store.
func WithRemoteCaches(rc ...RemoteCache) Option {
	return func(s *Solver) { s.remote = append(s.remote, rc...) }
}

// WithExporters adds daemon-wide cache exporters: every build of the
// solver exports its steps to them.
func WithExporters(ex ...Exporter) Option {
	return func(s *Solver) { s.export = append(s.export, ex...) }
}

// New returns a solver running ops of w and recording results in store.
func New(w Worker, store cache.Store, opts ...Option) *Solver {
	s := &Solver{worker: w, store: store}
	s.jobs = s.newJobs()
	WithMaxParallelism(0)(s)
	for _, o := range opts {
		o(s)
	}
	return s
}
