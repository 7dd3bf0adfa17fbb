package exporter

import (
	"context"
	"sync"
)

// flightGroup runs one function per key at a time and hands its result to
// every caller that asked for that key meanwhile. Unlike x/sync's
// singleflight, the work runs under its own context, cancelled only when
// every caller waiting for it has gone: one cancelled export does not fail
// another that shares a layer with it.
type flightGroup[T any] struct {
	mu    sync.Mutex
	calls map[string]*flightCall[T]
}

type flightCall[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int
	cancel  context.CancelCauseFunc
}

func (g *flightGroup[T]) do(ctx context.Context, key string, fn func(context.Context) (T, error)) (T, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*flightCall[T]{}
	}
	c, ok := g.calls[key]
	if !ok {
		wctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		c = &flightCall[T]{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = c
		go func() {
			c.val, c.err = fn(wctx)
			g.mu.Lock()
			if g.calls[key] == c {
				delete(g.calls, key)
			}
			g.mu.Unlock()
			cancel(nil)
			close(c.done)
		}()
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			c.cancel(context.Cause(ctx))
			if g.calls[key] == c {
				delete(g.calls, key)
			}
		}
		g.mu.Unlock()
		var zero T
		return zero, context.Cause(ctx)
	}
}
