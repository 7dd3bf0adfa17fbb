package disk

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPassesNeverOverlap: many requests at once run passes one at a
// time, fewer passes than requests, and every request is served.
func TestPassesNeverOverlap(t *testing.T) {
	t.Parallel()
	var active, maxActive, runs atomic.Int32
	p := newPasses(func(context.Context) {
		n := active.Add(1)
		for {
			m := maxActive.Load()
			if n <= m || maxActive.CompareAndSwap(m, n) {
				break
			}
		}
		runs.Add(1)
		time.Sleep(5 * time.Millisecond)
		active.Add(-1)
	})
	defer p.stop()
	const requests = 50
	var wg sync.WaitGroup
	for range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-p.Request()
		}()
	}
	wg.Wait()
	if maxActive.Load() != 1 {
		t.Errorf("%d passes ran at once, want 1", maxActive.Load())
	}
	if n := runs.Load(); n < 1 || n >= requests {
		t.Errorf("%d requests ran %d passes, want them coalesced", requests, n)
	}
}

// TestPassesServeLaterRequests: a request made while a pass runs is
// served by a pass that starts after it, and the requests made during one
// pass share the next.
func TestPassesServeLaterRequests(t *testing.T) {
	t.Parallel()
	started := make(chan int, 10)
	release := make(chan struct{})
	var runs atomic.Int32
	p := newPasses(func(context.Context) {
		started <- int(runs.Add(1))
		<-release
	})
	defer p.stop()

	first := p.Request()
	if n := <-started; n != 1 {
		t.Fatalf("pass %d started, want 1", n)
	}
	second, third := p.Request(), p.Request() // while pass 1 runs
	if second != third {
		t.Errorf("two requests during one pass wait for different passes")
	}
	release <- struct{}{}
	<-first
	select {
	case <-second:
		t.Fatal("a request made during pass 1 was served by pass 1")
	default:
	}
	if n := <-started; n != 2 {
		t.Fatalf("pass %d started, want 2", n)
	}
	release <- struct{}{}
	<-second
	if n := runs.Load(); n != 2 {
		t.Errorf("%d passes ran, want 2", n)
	}
}

// TestPassesStop: stop cancels the running pass and waits for it; later
// requests return at once without a pass.
func TestPassesStop(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	running := make(chan struct{})
	p := newPasses(func(ctx context.Context) {
		if runs.Add(1) == 1 {
			close(running)
		}
		<-ctx.Done()
	})
	first := p.Request()
	<-running
	p.stop()
	<-first
	<-p.Request()
	if n := runs.Load(); n != 1 {
		t.Errorf("%d passes ran, want 1", n)
	}
}

// TestPassesEvery: the time-based trigger runs passes with no request.
func TestPassesEvery(t *testing.T) {
	t.Parallel()
	ran := make(chan struct{}, 10)
	p := newPasses(func(context.Context) {
		select {
		case ran <- struct{}{}:
		default:
		}
	})
	defer p.stop()
	p.every(time.Millisecond)
	for range 3 {
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Fatal("no pass ran on the timer")
		}
	}
}
