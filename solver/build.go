package solver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/internal/flight"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
)

// SolveOpt is one build's options.
type SolveOpt struct {
	Session  session.Session // required when the graph has local sources, secrets or ssh
	Progress progress.Writer // nil discards progress
	// NoCache ignores every cache record (results are still recorded).
	NoCache bool
	// Remote caches for this build only (--cache-from), consulted after
	// the daemon's.
	Remote []RemoteCache
	// Exporters for this build only (--cache-to). They and the daemon's
	// get every step of the build; Solution.FinishExports completes them.
	Exporters []Exporter
	// KeysOnly says the caller needs the roots' keys, not their results
	// (a build without outputs): Result.Ref is nil, and a root found in a
	// remote cache is not downloaded.
	KeysOnly bool
}

// Result is the outcome of one root vertex.
type Result struct {
	Vertex *graph.Vertex
	Key    digest.Digest
	Ref    ops.Ref // nil for an empty filesystem
}

// Stats counts a build's steps.
type Stats struct {
	Steps  int // vertices solved
	Cached int // of which came from a cache
}

// Solution holds the root results of a build. Release it when done.
type Solution struct {
	Results []Result
	Stats   Stats

	exports []cache.ExportSession
	gate    *exportGate
}

// exportGate closes a build's export sessions to more steps once they are
// finished or discarded. A remote hit that fails to load while outputs
// are exported runs its step, and hands the new result over while the
// gate is open.
type exportGate struct {
	mu     sync.RWMutex
	closed bool
}

// close shuts the gate; Adds in progress finish first.
func (g *exportGate) close() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// Release releases the results' refs and discards cache exports that were
// not finished.
func (s *Solution) Release(ctx context.Context) {
	for _, r := range s.Results {
		if r.Ref != nil {
			_ = r.Ref.Release(ctx)
		}
	}
	s.gate.close()
	for _, e := range s.exports {
		e.Discard()
	}
}

// FinishExports waits until the build's cache exports (the daemon's shared
// caches and the build's --cache-to) have written every step, and returns
// their errors. Solve leaves them running so that the caller can export
// the image meanwhile; a build is complete only once this returns nil.
func (s *Solution) FinishExports(ctx context.Context) error {
	s.gate.close()
	return finishExports(ctx, s.exports)
}

// vertexResult is a solved vertex as the build sees it.
type vertexResult struct {
	key          digest.Digest
	contentKeyed bool
	name         string

	// ref is the result when it is at hand; otherwise load fetches it
	// on first use (a remote cache hit is only downloaded if needed).
	once sync.Once
	load func(ctx context.Context) (ops.Ref, error)
	ref  ops.Ref
	err  error
}

// get materialises the result (once) and returns a new handle on it.
func (r *vertexResult) get(ctx context.Context, w Worker) (ops.Ref, error) {
	r.once.Do(func() {
		if r.ref == nil && r.load != nil {
			r.ref, r.err = r.load(ctx)
		}
	})
	if r.err != nil || r.ref == nil {
		return nil, r.err
	}
	if r.ref.ID() == "" {
		// A result that cannot be loaded again (a synced context) is
		// shared as it is; only its owner releases it (see releaseRef).
		return r.ref, nil
	}
	return w.Load(ctx, r.ref.ID())
}

func (r *vertexResult) release(ctx context.Context) {
	if r.ref != nil {
		_ = r.ref.Release(ctx)
	}
}

type vertexState struct {
	done chan struct{}
	res  *vertexResult
	err  error
}

type build struct {
	s      *Solver
	opt    SolveOpt
	pw     progress.Writer
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	states map[digest.Digest]*vertexState
	warned map[string]bool // remote caches that warned already

	// exports are the build's cache export sessions; inResult holds the
	// vertices whose results are layers of a root (mode=min).
	exports  []cache.ExportSession
	gate     exportGate
	inResult map[digest.Digest]bool

	steps, cached atomic.Int32
}

// Solve runs the graph reachable from roots and returns the roots' results,
// in order. A nil root gives a nil Ref. On failure it returns an error
// wrapping *errdefs.VertexError for the first step that failed.
func (s *Solver) Solve(ctx context.Context, roots []*graph.Vertex, opt SolveOpt) (*Solution, error) {
	if err := graph.Validate(roots...); err != nil {
		return nil, errdefs.WithClass(errdefs.ErrInvalidArgument, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	b := &build{s: s, opt: opt, pw: opt.Progress, cancel: cancel, states: map[digest.Digest]*vertexState{}, warned: map[string]bool{}}
	if b.pw == nil {
		b.pw = progress.Discard
	}
	if err := b.beginExports(ctx, roots); err != nil {
		return nil, err
	}
	exported := false
	defer func() {
		if !exported {
			for _, e := range b.exports {
				e.Discard()
			}
		}
	}()

	// One goroutine per vertex; each waits for its inputs. The state map
	// is complete before any goroutine reads it.
	var vertices []*graph.Vertex
	_ = graph.Walk(roots, func(v *graph.Vertex) error {
		b.states[v.Digest()] = &vertexState{done: make(chan struct{})}
		vertices = append(vertices, v)
		return nil
	})
	var wg sync.WaitGroup
	for _, v := range vertices {
		st := b.states[v.Digest()]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(st.done)
			st.res, st.err = b.solveVertex(ctx, v)
			if st.err != nil {
				cancel(st.err)
			}
		}()
	}
	wg.Wait()

	defer func() {
		for _, st := range b.states {
			if st.res != nil {
				st.res.release(context.Background())
			}
		}
	}()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	sol := &Solution{exports: b.exports, gate: &b.gate}
	for _, r := range roots {
		if r == nil {
			sol.Results = append(sol.Results, Result{})
			continue
		}
		st := b.states[r.Digest()]
		if opt.KeysOnly {
			sol.Results = append(sol.Results, Result{Vertex: r, Key: st.res.key})
			continue
		}
		ref, err := st.res.get(ctx, s.worker)
		if err != nil {
			sol.Release(context.Background())
			return nil, fmt.Errorf("load result of %s: %w", r.Meta.Name, err)
		}
		if ref != nil && ref.ID() == "" {
			st.res.ref = nil // ownership moves to the caller
		}
		sol.Results = append(sol.Results, Result{Vertex: r, Key: st.res.key, Ref: ref})
	}
	// Counted once the roots are loaded: a hit that failed to load ran.
	sol.Stats = Stats{Steps: int(b.steps.Load()), Cached: int(b.cached.Load())}
	exported = true
	return sol, nil
}

func (b *build) input(ctx context.Context, v *graph.Vertex) (*vertexResult, error) {
	st := b.states[v.Digest()]
	select {
	case <-st.done:
		return st.res, st.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func location(v *graph.Vertex) string {
	if l := v.Meta.Location; l != nil && l.Start > 0 {
		return fmt.Sprintf("%s:%d", l.File, l.Start)
	}
	return ""
}

func (b *build) status(v *graph.Vertex, started, completed *time.Time, cached bool, source, errText, reason string) {
	inputs := make([]digest.Digest, len(v.Inputs))
	for i, in := range v.Inputs {
		inputs[i] = in.Digest()
	}
	b.pw.Write(progress.Event{Vertex: &progress.VertexStatus{
		Digest: v.Digest(), Name: v.Meta.Name, Inputs: inputs,
		Started: started, Completed: completed, Cached: cached, CacheSource: source,
		Error: errText, MissReason: reason, Location: location(v),
	}})
}

// solveVertex computes v's key, looks it up and runs it on a miss.
func (b *build) solveVertex(ctx context.Context, v *graph.Vertex) (res *vertexResult, err error) {
	inputs := make([]*vertexResult, len(v.Inputs))
	for i, in := range v.Inputs {
		r, err := b.input(ctx, in)
		if err != nil {
			// The failing input reports its own error.
			return nil, err
		}
		inputs[i] = r
	}
	b.steps.Add(1)
	start := time.Now()
	defer func() {
		if err != nil && ctx.Err() == nil {
			now := time.Now()
			b.status(v, &start, &now, false, "", err.Error(), "")
			err = &errdefs.VertexError{Vertex: v.Digest().String(), Name: v.Meta.Name, Location: location(v), Err: err}
		} else if err != nil {
			now := time.Now()
			b.status(v, &start, &now, false, "", "canceled", "")
		}
	}()

	op, err := b.s.worker.Op(v, b.opt.Session)
	if err != nil {
		return nil, err
	}
	cm, err := op.CacheMap(ctx)
	if err != nil {
		return nil, err
	}

	if ops.IsContentKeyed(op) {
		return b.runPrivate(ctx, v, op, cm, inputs, start)
	}

	parts, err := b.keyParts(ctx, v, cm, inputs)
	if err != nil {
		return nil, err
	}
	key := cacheKey(cm.Digest, parts)
	res = &vertexResult{key: key, name: v.Meta.Name}

	st := step{v: v, op: op, cm: cm, inputs: inputs, key: key, parts: parts}
	if !b.opt.NoCache && !v.Meta.IgnoreCache {
		ref, hit, source, err := b.lookup(ctx, key)
		if err != nil {
			return nil, err
		}
		if ref != nil || hit != nil {
			res.ref = ref
			if hit != nil {
				res.load = b.loadHit(st, hit, source)
			}
			b.cached.Add(1)
			now := time.Now()
			b.status(v, &now, &now, true, source, "", "")
			b.export(st, res, hit, source)
			return res, nil
		}
	}

	ref, err := b.run(ctx, st, start, b.explain(ctx, v, cm.Digest, parts))
	if err != nil {
		return nil, err
	}
	res.ref = ref
	b.export(st, res, nil, "")
	return res, nil
}

// step is what solveVertex knows of a vertex once its key is computed.
type step struct {
	v      *graph.Vertex
	op     ops.Op
	cm     *ops.CacheMap
	inputs []*vertexResult
	key    digest.Digest
	parts  []cache.Input
}

// run executes st (or joins the job that already does) and returns its
// result.
func (b *build) run(ctx context.Context, st step, start time.Time, reason string) (ops.Ref, error) {
	v := st.v
	b.status(v, &start, nil, false, "", "", reason)
	ref, err := b.s.jobs.DoLazy(ctx, st.key.String(), func() (flight.Work[ops.Ref], func(), error) {
		refs, err := b.materialize(ctx, st.inputs)
		if err != nil {
			return nil, nil, err
		}
		sp := jobSpec{
			op: st.op, inputs: refs, slot: st.cm.UsesExecutor, selfAdmit: st.cm.AdmitsItself,
			record: func(ctx context.Context, ref ops.Ref) error {
				return b.s.store.Put(ctx, newRecord(v, st.key, st.cm.Digest, st.parts, ref.ID()))
			},
		}
		work := func(ctx context.Context, _ *flight.Call) (ops.Ref, error) { return b.s.runJob(ctx, sp) }
		return work, func() { releaseAll(context.Background(), refs) }, nil
	}, flight.WithProgress(b.pw))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	b.status(v, &start, &now, false, "", "", reason)
	return ref, nil
}

// runPrivate runs a content-keyed op (a local context) for this build only:
// it is never cached and never shared.
func (b *build) runPrivate(ctx context.Context, v *graph.Vertex, op ops.Op, cm *ops.CacheMap, inputs []*vertexResult, start time.Time) (*vertexResult, error) {
	b.status(v, &start, nil, false, "", "", "")
	refs, err := b.materialize(ctx, inputs)
	if err != nil {
		return nil, err
	}
	defer releaseAll(context.Background(), refs)
	ref, err := op.Exec(progress.WithWriter(ctx, b.pw), refs)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	b.status(v, &start, &now, false, "", "", "")
	return &vertexResult{key: cm.Digest, contentKeyed: true, name: v.Meta.Name, ref: ref}, nil
}

// keyParts returns each input's part of v's key, computing content digests
// for content-keyed inputs.
func (b *build) keyParts(ctx context.Context, v *graph.Vertex, cm *ops.CacheMap, inputs []*vertexResult) ([]cache.Input, error) {
	parts := make([]cache.Input, len(inputs))
	for i, in := range inputs {
		parts[i] = cache.Input{Key: in.key, Name: in.name}
		if !in.contentKeyed {
			continue
		}
		var dep ops.Dep
		if i < len(cm.Deps) {
			dep = cm.Deps[i]
		}
		ref, err := in.get(ctx, b.s.worker)
		if err != nil {
			return nil, err
		}
		var c ops.Content
		if dep.Content != nil {
			c, err = dep.Content(ctx, ref)
		} else {
			c, err = b.s.worker.Checksum(ctx, ref, dep.Selectors)
		}
		releaseRef(ref)
		if err != nil {
			return nil, checksumError(v, i, in.name, err)
		}
		parts[i].Content = &c
	}
	return parts, nil
}

// checksumError explains why input i of v could not be read: a path that
// is not there names where it was looked for.
func checksumError(v *graph.Vertex, i int, name string, err error) error {
	if !errdefs.IsNotFound(err) {
		return fmt.Errorf("checksum %s: %w", name, err)
	}
	if i < len(v.Inputs) {
		if src := v.Inputs[i].Op.Source; src != nil && src.Local != nil {
			where := "the build context"
			if src.Local.Name != "context" {
				where = fmt.Sprintf("build context %q", src.Local.Name)
			}
			return fmt.Errorf("%w in %s (check the path, and that .dockerignore does not exclude it)", err, where)
		}
	}
	return fmt.Errorf("%w in %s", err, name)
}

func (b *build) materialize(ctx context.Context, inputs []*vertexResult) ([]ops.Ref, error) {
	refs := make([]ops.Ref, len(inputs))
	for i, in := range inputs {
		r, err := in.get(ctx, b.s.worker)
		if err != nil {
			releaseAll(context.Background(), refs)
			return nil, err
		}
		refs[i] = r
	}
	return refs, nil
}

// lookup finds key in the caches: local store first, then the daemon's and
// the build's remote caches. A local hit returns the ref, a remote one the
// hit; both are nil on a miss.
func (b *build) lookup(ctx context.Context, key digest.Digest) (ops.Ref, cache.Hit, string, error) {
	rec, err := b.s.store.Get(ctx, key)
	switch {
	case err == nil:
		ref, lerr := b.s.worker.Load(ctx, rec.Result)
		if lerr == nil {
			_ = b.s.store.Touch(ctx, key, time.Now())
			return ref, nil, "local", nil
		}
		if !errors.Is(lerr, errdefs.ErrNotFound) {
			return nil, nil, "", lerr
		}
		// The result is gone (pruned): the record is stale.
		_ = b.s.store.Delete(ctx, key)
	case !errors.Is(err, errdefs.ErrNotFound):
		return nil, nil, "", fmt.Errorf("cache lookup: %w", err)
	}
	remotes := append(append([]RemoteCache{}, b.s.remote...), b.opt.Remote...)
	for _, rc := range remotes {
		hit, err := rc.Lookup(ctx, key)
		if err == nil && hit != nil {
			return nil, hit, rc.Name(), nil
		}
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) && ctx.Err() == nil {
			b.warnOnce(rc.Name(), fmt.Sprintf("cache %s: %v (the build goes on without it)", rc.Name(), err))
		}
	}
	return nil, nil, "", nil
}

// warnOnce reports a remote cache's first failure in this build; a cache
// that is down would otherwise warn once per step.
func (b *build) warnOnce(name, msg string) {
	b.mu.Lock()
	seen := b.warned[name]
	b.warned[name] = true
	b.mu.Unlock()
	if !seen {
		b.pw.Write(progress.Event{Warning: &progress.Warning{Message: msg}})
	}
}

// newRecord is the local cache record of v's result id.
func newRecord(v *graph.Vertex, key, opDigest digest.Digest, parts []cache.Input, id string) cache.Record {
	now := time.Now()
	return cache.Record{
		Key: key, Result: id, Created: now, LastUsed: now,
		StepID: v.Meta.StepID, Description: v.Meta.Name,
		Components: components(v, opDigest, parts),
	}
}
