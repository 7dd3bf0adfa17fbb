package image

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFlightRunsOnce(t *testing.T) {
	t.Parallel()
	var g flightGroup
	var runs atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context, f *flight) error {
		runs.Add(1)
		f.current.Add(5)
		<-release
		return nil
	}
	const callers = 6
	var wg sync.WaitGroup
	started := make(chan bool, callers)
	var ticks atomic.Int32
	for range callers {
		wg.Go(func() {
			s, err := g.do(t.Context(), "k", fn, time.Millisecond, func(f *flight) {
				if f.current.Load() == 5 {
					ticks.Add(1)
				}
			})
			if err != nil {
				t.Error(err)
			}
			started <- s
		})
	}
	// Let every caller join before the run ends.
	waitFor(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		f := g.calls["k"]
		return f != nil && f.waiters == callers
	})
	waitFor(t, func() bool { return ticks.Load() > 0 })
	close(release)
	wg.Wait()
	close(started)
	leaders := 0
	for s := range started {
		if s {
			leaders++
		}
	}
	if runs.Load() != 1 || leaders != 1 {
		t.Errorf("%d runs, %d callers started one; want 1 and 1", runs.Load(), leaders)
	}
	// The next call after the run starts a new one.
	if s, err := g.do(t.Context(), "k", fn, 0, nil); err != nil || !s || runs.Load() != 2 {
		t.Errorf("after the run: started %v, err %v, runs %d", s, err, runs.Load())
	}
}

// TestFlightCancel: a caller giving up does not cancel the run for the
// others; the last one giving up cancels it.
func TestFlightCancel(t *testing.T) {
	t.Parallel()
	var g flightGroup
	runCtx := make(chan context.Context, 1)
	finish := make(chan struct{})
	fn := func(ctx context.Context, _ *flight) error {
		runCtx <- ctx
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-finish:
			return nil
		}
	}
	c1, cancel1 := context.WithCancel(t.Context())
	c2, cancel2 := context.WithCancel(t.Context())
	errs := make(chan error, 2)
	go func() { _, err := g.do(c1, "k", fn, 0, nil); errs <- err }()
	rc := <-runCtx
	go func() { _, err := g.do(c2, "k", fn, 0, nil); errs <- err }()
	waitFor(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.calls["k"] != nil && g.calls["k"].waiters == 2
	})

	cancel1() // the starter leaves
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller got %v", err)
	}
	select {
	case <-rc.Done():
		t.Fatal("the run was cancelled while a caller still waits")
	case <-time.After(20 * time.Millisecond):
	}
	cancel2() // the last one leaves
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Errorf("second cancelled caller got %v", err)
	}
	select {
	case <-rc.Done():
		if !errors.Is(context.Cause(rc), errAbandoned) {
			t.Errorf("run cancelled with %v, want errAbandoned", context.Cause(rc))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the run goes on with nobody waiting")
	}
	// A new caller starts a new run at once.
	go func() { <-runCtx; close(finish) }()
	if s, err := g.do(t.Context(), "k", fn, 0, nil); err != nil || !s {
		t.Errorf("new caller: started %v, err %v", s, err)
	}
}

// TestFlightRetry: a caller that joined a run which failed tries once on
// its own; the caller that started it does not.
func TestFlightRetry(t *testing.T) {
	t.Parallel()
	var g flightGroup
	var runs atomic.Int32
	gate := make(chan struct{})
	failFirst := func(ctx context.Context, _ *flight) error {
		if runs.Add(1) == 1 {
			<-gate
			return errors.New("the starter's credentials were wrong")
		}
		return nil
	}
	errs := make(chan error, 2)
	go func() { errs <- g.doOnce(t.Context(), "k", failFirst, 0, nil) }()
	waitFor(t, func() bool { return runs.Load() == 1 })
	go func() { errs <- g.doOnce(t.Context(), "k", failFirst, 0, nil) }()
	waitFor(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.calls["k"] != nil && g.calls["k"].waiters == 2
	})
	close(gate)
	var failed, ok int
	for range 2 {
		if err := <-errs; err != nil {
			failed++
		} else {
			ok++
		}
	}
	if failed != 1 || ok != 1 || runs.Load() != 2 {
		t.Errorf("%d failed, %d succeeded, %d runs; want 1, 1, 2", failed, ok, runs.Load())
	}
}

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
