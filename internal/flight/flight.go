// Package flight runs one call per key at a time and shares its result
// with every caller that asks for the key meanwhile, like
// golang.org/x/sync/singleflight, with what that lacks for a build daemon:
//
//   - the call runs on a context detached from the caller that started it:
//     one build giving up does not fail another build waiting for the same
//     download, layer or step. The call is cancelled (with ErrAbandoned)
//     only when every waiter has gone;
//   - progress: the work counts what it has done (Call.Add) and waiters are
//     ticked with the count (WithTick); the progress events the work writes
//     reach the writer of every caller waiting (WithProgress);
//   - WithRetryOnce: a caller that joined someone else's call which failed
//     runs it once more on its own (with its own credentials and context);
//   - lazy work (DoLazy): the work is prepared by the caller that starts
//     it, with its context, and only when no call runs;
//   - shared resources (Group.Share, Group.Release): each waiter gets its
//     own handle on the result and the call's is released once nobody can
//     take it any more.
//
// Source pulls, layer blobs, git and HTTP sources and the solver's steps
// all run through it.
package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-build/kiln/progress"
)

// ErrAbandoned is the cause that cancels a call no caller waits for any
// more.
var ErrAbandoned = errors.New("every caller stopped waiting")

// Work is what a call runs. ctx keeps the starting caller's values but not
// its cancellation; c is the call, for its progress.
type Work[T any] func(ctx context.Context, c *Call) (T, error)

// Group runs one call per key at a time. The zero value is ready to use.
type Group[T any] struct {
	// Share, when set, gives each waiter of a successful call its own
	// copy of the result (a handle it releases itself); it runs while
	// the waiter still holds the call. Without it waiters share the
	// result as it is.
	Share func(ctx context.Context, v T) (T, error)
	// Release, when set, is called once with a successful result no
	// waiter can take any more: when the last waiter has left a finished
	// call, or when the call finishes with no waiter.
	Release func(v T)

	mu    sync.Mutex
	calls map[string]*call[T]
}

// Call is one run of a Work, as the work and the waiters see it.
type Call struct {
	done atomic.Int64
	fan  *progress.Multi // nil unless the starter asked WithProgress
}

// Add counts n more units (bytes, items) of the call's work done and
// returns the total.
func (c *Call) Add(n int64) int64 { return c.done.Add(n) }

// Done returns the units of work done so far.
func (c *Call) Done() int64 { return c.done.Load() }

type call[T any] struct {
	Call
	finished chan struct{} // closed once val and err are set
	val      T
	err      error
	// completed (set with val and err) and waiters are guarded by the
	// group's mu.
	completed bool
	waiters   int
	cancel    context.CancelCauseFunc
}

// Option configures one Do call.
type Option func(*options)

type options struct {
	interval time.Duration
	tick     func(done int64)
	retry    bool
	w        progress.Writer
}

// WithTick calls tick with the call's Done count about every interval
// while the caller waits.
func WithTick(interval time.Duration, tick func(done int64)) Option {
	return func(o *options) { o.interval, o.tick = interval, tick }
}

// WithRetryOnce makes a caller that joined another caller's call, which
// failed while this caller's context is still live, run the key once
// more: the other call may have failed for reasons of its own (its
// credentials, its build being cancelled).
func WithRetryOnce() Option { return func(o *options) { o.retry = true } }

// WithProgress hands w, while the caller waits, the progress events the
// work writes to progress.FromContext(ctx). The caller that starts the
// call decides: without it, the work writes to the starter's own writer
// (the context's values are kept) and joiners see none.
func WithProgress(w progress.Writer) Option { return func(o *options) { o.w = w } }

// Do runs work for key, or joins the call in flight, and returns its
// result.
func (g *Group[T]) Do(ctx context.Context, key string, work Work[T], opts ...Option) (T, error) {
	return g.DoLazy(ctx, key, func() (Work[T], func(), error) { return work, nil, nil }, opts...)
}

// DoLazy is Do whose work is made by prepare, which runs in the caller,
// only when no call for key runs; an error from it is the caller's alone.
// When another caller started a call for key while prepare ran, this
// caller joins that call and abandon, if not nil, undoes the preparation.
func (g *Group[T]) DoLazy(ctx context.Context, key string, prepare func() (work Work[T], abandon func(), err error), opts ...Option) (T, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	v, started, err := g.do(ctx, key, prepare, o)
	if err == nil || started || !o.retry || ctx.Err() != nil {
		return v, err
	}
	v, _, err = g.do(ctx, key, prepare, o)
	return v, err
}

func (g *Group[T]) do(ctx context.Context, key string, prepare func() (Work[T], func(), error), o options) (v T, started bool, err error) {
	c, started, err := g.join(ctx, key, prepare, o)
	if err != nil {
		return v, false, err
	}
	leave := func() {}
	if o.w != nil && c.fan != nil {
		leave = c.fan.Add(o.w)
	}
	var tc <-chan time.Time
	if o.tick != nil && o.interval > 0 {
		t := time.NewTicker(o.interval)
		defer t.Stop()
		tc = t.C
	}
	for {
		select {
		case <-c.finished:
			leave()
			defer g.leave(key, c)
			if c.err != nil || g.Share == nil {
				return c.val, started, c.err
			}
			v, err = g.Share(ctx, c.val)
			return v, started, err
		case <-tc:
			o.tick(c.Done())
		case <-ctx.Done():
			leave()
			g.leave(key, c)
			return v, started, context.Cause(ctx)
		}
	}
}

// join registers the caller as a waiter of key's call, starting one when
// none runs.
func (g *Group[T]) join(ctx context.Context, key string, prepare func() (Work[T], func(), error), o options) (*call[T], bool, error) {
	g.mu.Lock()
	if c, ok := g.calls[key]; ok {
		c.waiters++
		g.mu.Unlock()
		return c, false, nil
	}
	g.mu.Unlock()

	work, abandon, err := prepare()
	if err != nil {
		return nil, false, err
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.calls[key]; ok {
		// Another caller started the same key meanwhile.
		if abandon != nil {
			abandon()
		}
		c.waiters++
		return c, false, nil
	}
	if g.calls == nil {
		g.calls = map[string]*call[T]{}
	}
	wctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	c := &call[T]{finished: make(chan struct{}), waiters: 1, cancel: cancel}
	if o.w != nil {
		c.fan = &progress.Multi{}
		wctx = progress.WithWriter(wctx, c.fan)
	}
	g.calls[key] = c
	go g.run(wctx, key, c, work)
	return c, true, nil
}

func (g *Group[T]) run(ctx context.Context, key string, c *call[T], work Work[T]) {
	v, err := work(ctx, &c.Call)
	g.mu.Lock()
	c.val, c.err, c.completed = v, err, true
	if g.calls[key] == c {
		delete(g.calls, key)
	}
	orphan := c.waiters == 0
	g.mu.Unlock()
	c.cancel(nil)
	close(c.finished)
	if orphan && err == nil && g.Release != nil {
		g.Release(v)
	}
}

// leave drops one waiter of c. The last waiter of a finished call
// releases its result; the last of a running one cancels it and forgets
// it, so the next caller starts afresh.
func (g *Group[T]) leave(key string, c *call[T]) {
	g.mu.Lock()
	c.waiters--
	if c.waiters > 0 {
		g.mu.Unlock()
		return
	}
	if c.completed {
		g.mu.Unlock()
		if c.err == nil && g.Release != nil {
			g.Release(c.val)
		}
		return
	}
	if g.calls[key] == c {
		delete(g.calls, key)
	}
	g.mu.Unlock()
	c.cancel(ErrAbandoned)
}

// Waiters returns how many callers wait for key's call in flight (0 when
// none runs).
func (g *Group[T]) Waiters(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.calls[key]; ok {
		return c.waiters
	}
	return 0
}
