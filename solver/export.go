package solver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/progress"
)

// beginExports starts an export session on every exporter of the build
// (the daemon's, then the build's).
func (b *build) beginExports(ctx context.Context, roots []*graph.Vertex) error {
	all := append(append([]Exporter{}, b.s.export...), b.opt.Exporters...)
	if len(all) == 0 {
		return nil
	}
	b.inResult = resultVertices(roots)
	ref := ""
	if b.opt.Session != nil {
		ref = b.opt.Session.ID()
	}
	for _, e := range all {
		sess, err := e.Begin(ctx, cache.Build{Ref: ref, Progress: b.pw})
		if err != nil {
			for _, s := range b.exports {
				s.Discard()
			}
			b.exports = nil
			return fmt.Errorf("cache export: %w", err)
		}
		b.exports = append(b.exports, sess)
	}
	return nil
}

// export hands a solved step to the build's export sessions. Each session
// gets its own handle on the local result, when there is one.
func (b *build) export(st step, res *vertexResult, hit cache.Hit, source string) {
	if len(b.exports) == 0 {
		return
	}
	b.gate.mu.RLock()
	defer b.gate.mu.RUnlock()
	if b.gate.closed {
		return
	}
	id := ""
	if res.ref != nil {
		id = res.ref.ID()
	}
	rec := newRecord(st.v, st.key, st.cm.Digest, st.parts, id)
	for _, e := range b.exports {
		s := cache.ExportStep{Record: rec, Hit: hit, Source: source, InResult: b.inResult[st.v.Digest()]}
		if id != "" {
			ref, err := b.s.worker.Load(context.Background(), id)
			if err != nil {
				b.pw.Write(progress.Event{Warning: &progress.Warning{
					Vertex: st.v.Digest(), Message: fmt.Sprintf("export cache record of %s: %v", st.v.Meta.Name, err),
				}})
				continue
			}
			s.Ref = ref
		}
		e.Add(s)
	}
}

// loadHit returns the loader of a remote hit. Once imported, the result is
// recorded in the local store, so the next build finds it there. A hit
// that cannot be loaded (its blobs are gone or corrupt, the cache went
// away) is a miss after all: the step runs.
func (b *build) loadHit(st step, hit cache.Hit, source string) func(context.Context) (ops.Ref, error) {
	return func(ctx context.Context) (ops.Ref, error) {
		ref, err := hit.Load(ctx)
		if err == nil {
			if perr := b.s.store.Put(ctx, newRecord(st.v, st.key, st.cm.Digest, st.parts, ref.ID())); perr != nil {
				b.pw.Write(progress.Event{Warning: &progress.Warning{
					Vertex: st.v.Digest(), Message: fmt.Sprintf("record the result of %s imported from %s: %v", st.v.Meta.Name, source, perr),
				}})
			}
			return ref, nil
		}
		if cerr := context.Cause(ctx); cerr != nil {
			return nil, cerr
		}
		b.pw.Write(progress.Event{Warning: &progress.Warning{
			Vertex:  st.v.Digest(),
			Message: fmt.Sprintf("cache %s: cannot use its result for %s: %v; running the step", source, st.v.Meta.Name, err),
		}})
		b.cached.Add(-1)
		ref, err = b.run(ctx, st, time.Now(), fmt.Sprintf("the %s cache's result could not be loaded", source))
		if err == nil {
			// The exporters were handed the hit, whose blobs are bad:
			// hand them the step's own result too (they prefer it).
			b.export(st, &vertexResult{ref: ref}, nil, "")
		}
		return ref, err
	}
}

// resultVertices returns the vertices whose results are layers of a root:
// the roots, and below each the input its filesystem starts from (an
// exec's root, a file op's base, every input of a merge).
func resultVertices(roots []*graph.Vertex) map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	var visit func(v *graph.Vertex)
	visit = func(v *graph.Vertex) {
		if v == nil || out[v.Digest()] {
			return
		}
		out[v.Digest()] = true
		op := v.Op
		switch {
		case op.Exec != nil:
			i := op.Exec.Root
			for _, m := range op.Exec.Mounts {
				if op.Exec.Output != "" && m.Target == op.Exec.Output {
					i = m.Input // the result is this mount's filesystem
				}
			}
			if i >= 0 && i < len(v.Inputs) {
				visit(v.Inputs[i])
			}
		case op.File != nil:
			if i := op.File.Base; i >= 0 && i < len(v.Inputs) {
				visit(v.Inputs[i])
			}
		case op.Merge != nil:
			for _, in := range v.Inputs {
				visit(in)
			}
		}
	}
	for _, r := range roots {
		visit(r)
	}
	return out
}

// finishExports finishes the sessions concurrently and joins their errors.
func finishExports(ctx context.Context, sessions []cache.ExportSession) error {
	errs := make([]error, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() { errs[i] = s.Finish(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
