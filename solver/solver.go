// Package solver runs build graphs: it computes each vertex's cache key,
// looks it up in the caches, runs the misses in parallel (steps that run a
// container start when an Admission lets them, see package sched),
// deduplicates identical steps across concurrent
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
	"sync"
	"time"

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

// Admission decides when a step that runs a container may start. Acquire
// blocks until it may, or ctx ends (the error is then context.Cause(ctx)),
// and returns how long the step waited and the function to call when the
// step is over; calls after the first do nothing. *sched.Scheduler admits by measured pressure.
type Admission interface {
	Acquire(ctx context.Context) (release func(), waited time.Duration, err error)
}

// Solver runs builds. It is safe for concurrent use by many builds.
type Solver struct {
	worker Worker
	store  cache.Store
	admit  Admission
	remote []RemoteCache
	export []Exporter

	jobs *flight.Group[ops.Ref] // steps in flight, by cache key
}

// Option configures a Solver.
type Option func(*Solver)

// WithMaxParallelism admits at most n steps that run a container at
// once, by count. n <= 0 means runtime.NumCPU(). It is the default.
func WithMaxParallelism(n int) Option {
	return func(s *Solver) {
		if n <= 0 {
			n = runtime.NumCPU()
		}
		s.admit = slots{semaphore.NewWeighted(int64(n))}
	}
}

// WithAdmission lets a decides when steps that run a container start.
func WithAdmission(a Admission) Option {
	return func(s *Solver) { s.admit = a }
}

// slots is the Admission of WithMaxParallelism.
type slots struct{ sem *semaphore.Weighted }

func (sl slots) Acquire(ctx context.Context) (func(), time.Duration, error) {
	start := time.Now()
	if err := sl.sem.Acquire(ctx, 1); err != nil {
		return nil, time.Since(start), context.Cause(ctx)
	}
	var once sync.Once
	return func() { once.Do(func() { sl.sem.Release(1) }) }, time.Since(start), nil
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
