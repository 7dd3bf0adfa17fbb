package image

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// errAbandoned cancels a flight that no caller waits for any more.
var errAbandoned = errors.New("every caller stopped waiting")

// flightGroup runs one piece of work per key at a time (one download per
// blob, one unpack per chain ID); callers asking for a key whose work is
// running wait for it instead of starting it again.
//
// It is golang.org/x/sync/singleflight plus what that lacks here: the work
// runs on a context of its own, detached from the caller that started it,
// so one build cancelling does not fail another build waiting for the same
// blob; the work is cancelled only when every waiter has gone. A progress
// counter is shared with the waiters.
type flightGroup struct {
	mu    sync.Mutex
	calls map[string]*flight
}

// flight is one running piece of work.
type flight struct {
	done    chan struct{}
	err     error
	waiters int
	cancel  context.CancelCauseFunc

	// current counts the bytes done so far, for progress.
	current atomic.Int64
}

// do runs fn for key, or waits for the run already in flight. fn gets a
// context that keeps ctx's values but not its cancellation. tick, if set,
// is called about every interval while the caller waits. started reports
// whether this call started fn; a caller that joined someone else's
// failed run may want to try once more on its own (with its own
// credentials and context).
func (g *flightGroup) do(ctx context.Context, key string, fn func(ctx context.Context, f *flight) error, interval time.Duration, tick func(f *flight)) (started bool, err error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*flight{}
	}
	f, ok := g.calls[key]
	if !ok {
		started = true
		wctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = f
		go func() {
			err := fn(wctx, f)
			g.mu.Lock()
			if g.calls[key] == f {
				delete(g.calls, key)
			}
			f.err = err
			g.mu.Unlock()
			cancel(nil)
			close(f.done)
		}()
	}
	f.waiters++
	g.mu.Unlock()

	var tc <-chan time.Time
	if tick != nil && interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tc = t.C
	}
	for {
		select {
		case <-f.done:
			g.leave(key, f)
			return started, f.err
		case <-tc:
			tick(f)
		case <-ctx.Done():
			g.leave(key, f)
			return started, context.Cause(ctx)
		}
	}
}

// leave drops one waiter of f; the last one to leave a running flight
// cancels it and forgets it, so the next caller starts afresh.
func (g *flightGroup) leave(key string, f *flight) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f.waiters--
	if f.waiters > 0 {
		return
	}
	select {
	case <-f.done:
		return
	default:
	}
	f.cancel(errAbandoned)
	if g.calls[key] == f {
		delete(g.calls, key)
	}
}

// doOnce is do, retried once by a caller that joined another caller's run
// which failed while the caller's own context is still live: the other
// run may have failed for reasons of its own (its credentials, its build
// being cancelled).
func (g *flightGroup) doOnce(ctx context.Context, key string, fn func(ctx context.Context, f *flight) error, interval time.Duration, tick func(f *flight)) error {
	started, err := g.do(ctx, key, fn, interval, tick)
	if err == nil || started || ctx.Err() != nil {
		return err
	}
	_, err = g.do(ctx, key, fn, interval, tick)
	return err
}
