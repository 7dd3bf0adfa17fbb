package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-build/kiln/progress"
)

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTicks: waiters are ticked with the work done so far.
func TestTicks(t *testing.T) {
	t.Parallel()
	var g Group[struct{}]
	release := make(chan struct{})
	work := func(ctx context.Context, c *Call) (struct{}, error) {
		c.Add(5)
		<-release
		return struct{}{}, nil
	}
	const callers = 4
	var ticked atomic.Int32
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			seen := false
			_, err := g.Do(t.Context(), "k", work, WithTick(time.Millisecond, func(done int64) {
				if done == 5 && !seen {
					seen = true
					ticked.Add(1)
				}
			}))
			if err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, func() bool { return ticked.Load() == callers })
	close(release)
	wg.Wait()
}

// TestRetryOnce: a caller that joined a call which failed tries once on
// its own; the caller that started it does not, nor one without the
// option.
func TestRetryOnce(t *testing.T) {
	t.Parallel()
	for _, retry := range []bool{true, false} {
		var g Group[struct{}]
		var runs atomic.Int32
		gate := make(chan struct{})
		failFirst := func(ctx context.Context, _ *Call) (struct{}, error) {
			if runs.Add(1) == 1 {
				<-gate
				return struct{}{}, errors.New("the starter's credentials were wrong")
			}
			return struct{}{}, nil
		}
		var opts []Option
		if retry {
			opts = append(opts, WithRetryOnce())
		}
		errs := make(chan error, 2)
		go func() { _, err := g.Do(t.Context(), "k", failFirst, opts...); errs <- err }()
		waitFor(t, func() bool { return runs.Load() == 1 })
		go func() { _, err := g.Do(t.Context(), "k", failFirst, opts...); errs <- err }()
		waitFor(t, func() bool { return g.Waiters("k") == 2 })
		close(gate)
		failed := 0
		for range 2 {
			if err := <-errs; err != nil {
				failed++
			}
		}
		want, wantRuns := 2, int32(1)
		if retry {
			want, wantRuns = 1, 2
		}
		if failed != want || runs.Load() != wantRuns {
			t.Errorf("retry %v: %d failed, %d runs; want %d and %d", retry, failed, runs.Load(), want, wantRuns)
		}
	}
}

// events collects progress events.
type events struct {
	mu sync.Mutex
	n  int
}

func (e *events) Write(progress.Event) { e.mu.Lock(); e.n++; e.mu.Unlock() }
func (e *events) count() int           { e.mu.Lock(); defer e.mu.Unlock(); return e.n }

// TestProgressFansOut: what the work reports reaches every waiter's
// writer while it waits.
func TestProgressFansOut(t *testing.T) {
	t.Parallel()
	var g Group[int]
	first, second := &events{}, &events{}
	write := make(chan struct{})
	release := make(chan struct{})
	work := func(ctx context.Context, _ *Call) (int, error) {
		<-write
		progress.FromContext(ctx).Write(progress.Event{Log: &progress.Log{Data: []byte("x")}})
		<-release
		return 1, nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = g.Do(t.Context(), "k", work, WithProgress(first)) })
	waitFor(t, func() bool { return g.Waiters("k") == 1 })
	wg.Go(func() { _, _ = g.Do(t.Context(), "k", work, WithProgress(second)) })
	waitFor(t, func() bool { return g.Waiters("k") == 2 })
	close(write)
	waitFor(t, func() bool { return first.count() == 1 && second.count() == 1 })
	close(release)
	wg.Wait()
}

// ref is a resource with a count of open handles.
type ref struct{ open *atomic.Int32 }

// TestShareAndRelease: each waiter gets its own handle; the call's own is
// released once, when the last waiter has its handle or when nobody waits.
func TestShareAndRelease(t *testing.T) {
	t.Parallel()
	var open atomic.Int32
	var released atomic.Int32
	g := Group[ref]{
		Share:   func(_ context.Context, r ref) (ref, error) { r.open.Add(1); return r, nil },
		Release: func(r ref) { released.Add(1); r.open.Add(-1) },
	}
	release := make(chan struct{})
	work := func(context.Context, *Call) (ref, error) {
		<-release
		open.Add(1)
		return ref{&open}, nil
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, err := g.Do(t.Context(), "k", work); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, func() bool { return g.Waiters("k") == 3 })
	close(release)
	wg.Wait()
	if open.Load() != 3 || released.Load() != 1 {
		t.Errorf("%d handles open, the call's released %d times; want the 3 waiters' and 1", open.Load(), released.Load())
	}

	// A call that finishes with nobody waiting releases its result.
	finish := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		_, _ = g.Do(ctx, "orphan", func(context.Context, *Call) (ref, error) {
			<-finish
			open.Add(1)
			return ref{&open}, nil
		})
	}()
	waitFor(t, func() bool { return g.Waiters("orphan") == 1 })
	cancel()
	waitFor(t, func() bool { return g.Waiters("orphan") == 0 })
	close(finish)
	waitFor(t, func() bool { return released.Load() == 2 })
}

// TestDoLazy: only the starter prepares; a preparation that loses the
// race is abandoned, and a failed one fails its caller alone.
func TestDoLazy(t *testing.T) {
	t.Parallel()
	var g Group[int]
	var prepared, abandoned atomic.Int32
	release := make(chan struct{})
	prepare := func() (Work[int], func(), error) {
		prepared.Add(1)
		return func(context.Context, *Call) (int, error) { <-release; return 7, nil }, func() { abandoned.Add(1) }, nil
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if v, err := g.DoLazy(t.Context(), "k", prepare); v != 7 || err != nil {
			t.Errorf("DoLazy = %d, %v", v, err)
		}
	})
	waitFor(t, func() bool { return g.Waiters("k") == 1 })
	wg.Go(func() {
		if v, err := g.DoLazy(t.Context(), "k", prepare); v != 7 || err != nil {
			t.Errorf("joined DoLazy = %d, %v", v, err)
		}
	})
	waitFor(t, func() bool { return g.Waiters("k") == 2 })
	close(release)
	wg.Wait()
	if prepared.Load() != 1 || abandoned.Load() != 0 {
		t.Errorf("prepared %d, abandoned %d; want the starter's only", prepared.Load(), abandoned.Load())
	}
	bad := errors.New("inputs are gone")
	_, err := g.DoLazy(t.Context(), "k2", func() (Work[int], func(), error) { return nil, nil, bad })
	if !errors.Is(err, bad) || g.Waiters("k2") != 0 {
		t.Errorf("failed preparation = %v, %d waiters", err, g.Waiters("k2"))
	}
}

// TestDoLazyAbandons: a caller whose preparation lost the race to start
// the call undoes it and joins the call that won.
func TestDoLazyAbandons(t *testing.T) {
	t.Parallel()
	var g Group[string]
	slow, preparing := make(chan struct{}), make(chan struct{})
	var abandoned atomic.Int32
	result := make(chan string, 1)
	go func() {
		v, _ := g.DoLazy(t.Context(), "k", func() (Work[string], func(), error) {
			close(preparing)
			<-slow // prepares while the other caller starts the call
			return func(context.Context, *Call) (string, error) { return "slow", nil }, func() { abandoned.Add(1) }, nil
		})
		result <- v
	}()
	<-preparing
	release := make(chan struct{})
	done := make(chan string, 1)
	go func() {
		v, _ := g.Do(t.Context(), "k", func(context.Context, *Call) (string, error) { <-release; return "fast", nil })
		done <- v
	}()
	waitFor(t, func() bool { return g.Waiters("k") == 1 })
	close(slow)
	waitFor(t, func() bool { return g.Waiters("k") == 2 })
	close(release)
	if a, b := <-result, <-done; a != "fast" || b != "fast" || abandoned.Load() != 1 {
		t.Errorf("results %q, %q, abandoned %d; want both fast and one abandoned preparation", a, b, abandoned.Load())
	}
}
