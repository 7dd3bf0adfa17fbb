package solver

import (
	"context"
	"errors"
	"fmt"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/progress"
)

// errNoWaiters cancels a job whose every build has gone away.
var errNoWaiters = errors.New("no build waits for this step any more")

// job is one execution of a step, shared by every build that needs the same
// cache key while it runs.
type job struct {
	key    digest.Digest
	cancel context.CancelCauseFunc
	done   chan struct{}
	ref    ops.Ref // valid after done, if err is nil
	err    error

	// progress fans the step's logs out to every waiting build. Guarded
	// by Solver.mu: waiters.
	progress progress.Multi
	waiters  int
}

// jobSpec is what a build hands to a new job.
type jobSpec struct {
	op     ops.Op
	inputs []ops.Ref
	slot   bool // takes an execution slot
	vertex digest.Digest
	// record writes the cache record of a successful result.
	record func(ctx context.Context, ref ops.Ref) error
}

// joinOrStart returns the running job for key, registering the caller as a
// waiter, or starts one with spec (built lazily: spec is only called when a
// new job starts). started says which happened. The caller must call leave
// (or wait, which leaves) exactly once.
func (s *Solver) joinOrStart(key digest.Digest, w progress.Writer, spec func() (jobSpec, error)) (j *job, started bool, remove func(), err error) {
	s.mu.Lock()
	if j, ok := s.jobs[key]; ok {
		j.waiters++
		remove := j.progress.Add(w)
		s.mu.Unlock()
		return j, false, remove, nil
	}
	s.mu.Unlock()

	sp, err := spec()
	if err != nil {
		return nil, false, nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.jobs[key]; ok {
		// Another build started the same step while we prepared.
		releaseAll(context.Background(), sp.inputs)
		j.waiters++
		return j, false, j.progress.Add(w), nil
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	j = &job{key: key, cancel: cancel, done: make(chan struct{}), waiters: 1}
	remove = j.progress.Add(w)
	s.jobs[key] = j
	go s.runJob(ctx, j, sp)
	return j, true, remove, nil
}

func (s *Solver) runJob(ctx context.Context, j *job, sp jobSpec) {
	defer close(j.done)
	defer func() {
		s.mu.Lock()
		if s.jobs[j.key] == j {
			delete(s.jobs, j.key)
		}
		s.mu.Unlock()
		j.cancel(nil)
	}()
	defer releaseAll(context.Background(), sp.inputs)

	ctx = progress.WithWriter(ctx, &j.progress)
	if sp.slot {
		release, _, err := s.admit.Acquire(ctx)
		if err != nil {
			j.err = err
			return
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
		j.err = err
		return
	}
	if sp.record != nil && ref != nil && ref.ID() != "" {
		if err := sp.record(ctx, ref); err != nil {
			_ = ref.Release(context.Background())
			j.err = fmt.Errorf("record result: %w", err)
			return
		}
	}
	j.ref = ref
	s.mu.Lock()
	orphan := j.waiters == 0
	s.mu.Unlock()
	if orphan && ref.ID() != "" {
		_ = ref.Release(context.Background())
	}
}

// wait blocks until the job is done or ctx ends. If ctx ends first, the
// caller stops waiting; the last waiter to leave cancels the job.
func (s *Solver) wait(ctx context.Context, j *job, remove func()) (ops.Ref, error) {
	select {
	case <-j.done:
		remove()
		defer s.leave(j)
		if j.err != nil || j.ref == nil {
			return nil, j.err
		}
		if j.ref.ID() == "" {
			// A result that cannot be loaded again is handed over as it
			// is; such steps are never shared (see Solve).
			return j.ref, nil
		}
		// Every waiter gets its own handle; the job's is released by the
		// last one to leave.
		return s.worker.Load(ctx, j.ref.ID())
	case <-ctx.Done():
		remove()
		s.leave(j)
		return nil, context.Cause(ctx)
	}
}

func (s *Solver) leave(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j.waiters--
	if j.waiters > 0 {
		return
	}
	select {
	case <-j.done:
		if j.ref != nil && j.ref.ID() != "" {
			_ = j.ref.Release(context.Background())
		}
		return
	default:
	}
	// Nobody wants the result any more: stop the step, and let the next
	// build that needs this key start afresh.
	if s.jobs[j.key] == j {
		delete(s.jobs, j.key)
	}
	j.cancel(errNoWaiters)
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
