// Package flight runs one call per key at a time and shares its result
// with every caller that asks for the key meanwhile, like
// golang.org/x/sync/singleflight, except that the call runs on a context
// detached from the caller that started it: one build giving up does not
// fail another build waiting for the same download or layer. The call is
// cancelled only when every waiter has gone.
package flight

import (
	"context"
	"errors"
	"sync"
)

// ErrAbandoned is the cause that cancels a flight that no caller waits for any more.
var ErrAbandoned = errors.New("every caller stopped waiting")

// Group runs one call per key at a time. The zero value is ready to use.
type Group[T any] struct {
	mu    sync.Mutex
	calls map[string]*flight[T]
}

type flight[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int
	cancel  context.CancelCauseFunc
}

// Do runs fn for key or joins the call in flight. fn gets a context that
// keeps ctx's values but not its cancellation.
func (g *Group[T]) Do(ctx context.Context, key string, fn func(ctx context.Context) (T, error)) (T, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*flight[T]{}
	}
	f, ok := g.calls[key]
	if !ok {
		fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		f = &flight[T]{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = f
		go func() {
			v, err := fn(fctx)
			g.mu.Lock()
			f.val, f.err = v, err
			if g.calls[key] == f {
				delete(g.calls, key)
			}
			g.mu.Unlock()
			cancel(nil)
			close(f.done)
		}()
	}
	f.waiters++
	g.mu.Unlock()

	select {
	case <-f.done:
		g.leave(key, f)
		return f.val, f.err
	case <-ctx.Done():
		g.leave(key, f)
		var zero T
		return zero, context.Cause(ctx)
	}
}

// leave drops one waiter; the last waiter of a running call cancels it and
// forgets it, so the next caller starts afresh.
func (g *Group[T]) leave(key string, f *flight[T]) {
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
	f.cancel(ErrAbandoned)
	if g.calls[key] == f {
		delete(g.calls, key)
	}
}

// Waiters returns how many callers wait for key's call in flight (0 when
// none runs).
func (g *Group[T]) Waiters(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.calls[key]; ok {
		return f.waiters
	}
	return 0
}
