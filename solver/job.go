package solver

import (
	"context"
	"fmt"
	"sync"

	"github.com/kiln-build/kiln/internal/flight"
	"github.com/kiln-build/kiln/ops"
)

// Steps run as flights (internal/flight): one execution per cache key,
// shared by every build that needs the key while it runs. The build that
// starts a step loads its inputs; the step reports its progress to every
// waiting build; each build gets its own handle on the result, and the
// step's own handle is released when no build can take it any more. When
// every build waiting for a step has gone, the step is cancelled and the
// next build needing the key starts afresh.

// jobSpec is what a build hands to a new job.
type jobSpec struct {
	op     ops.Op
	inputs []ops.Ref
	slot   bool // takes an execution slot
	// selfAdmit: the op's container takes the slot itself (ops.Admit)
	// once it is ready to start.
	selfAdmit bool
	// record writes the cache record of a successful result.
	record func(ctx context.Context, ref ops.Ref) error
}

// newJobs returns the flight group of s's steps.
func (s *Solver) newJobs() *flight.Group[ops.Ref] {
	return &flight.Group[ops.Ref]{
		// Every waiter gets its own handle. A result that cannot be
		// loaded again is handed over as it is; such steps are never
		// shared (see Solve).
		Share: func(ctx context.Context, ref ops.Ref) (ops.Ref, error) {
			if ref == nil || ref.ID() == "" {
				return ref, nil
			}
			return s.worker.Load(ctx, ref.ID())
		},
		Release: releaseRef,
	}
}

// runJob runs the step sp on ctx (the flight's, detached from the builds
// waiting) and records its result. It releases sp's inputs.
func (s *Solver) runJob(ctx context.Context, sp jobSpec) (ops.Ref, error) {
	defer releaseAll(context.Background(), sp.inputs)
	switch {
	case sp.slot && sp.selfAdmit:
		// The executor admits the container once it is ready to start;
		// whatever it did not release by the op's end is released here.
		var (
			mu       sync.Mutex
			releases []func()
		)
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range releases {
				r()
			}
		}()
		ctx = ops.WithAdmit(ctx, func(ctx context.Context) (func(), error) {
			release, _, err := s.admit.Acquire(ctx)
			if err != nil {
				return nil, err
			}
			// Release may be called again (Admission): by the
			// executor, then here.
			mu.Lock()
			releases = append(releases, release)
			mu.Unlock()
			return release, nil
		})
	case sp.slot:
		release, _, err := s.admit.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	ref, err := sp.op.Exec(ctx, sp.inputs)
	if err == nil && ctx.Err() != nil {
		// Cancelled as it finished: do not record a result nobody asked
		// to keep.
		err = context.Cause(ctx)
	}
	if err != nil {
		if ref != nil {
			_ = ref.Release(context.Background())
		}
		return nil, err
	}
	if sp.record != nil && ref != nil && ref.ID() != "" {
		if err := sp.record(ctx, ref); err != nil {
			_ = ref.Release(context.Background())
			return nil, fmt.Errorf("record result: %w", err)
		}
	}
	return ref, nil
}

// releaseAll releases handles the solver obtained with Worker.Load.
func releaseAll(_ context.Context, refs []ops.Ref) {
	for _, r := range refs {
		releaseRef(r)
	}
}

// releaseRef releases a loaded handle. Refs without an ID are shared, not
// loaded, and only their owning vertexResult releases them.
func releaseRef(r ops.Ref) {
	if r != nil && r.ID() != "" {
		_ = r.Release(context.Background())
	}
}
