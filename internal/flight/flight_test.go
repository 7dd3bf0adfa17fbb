package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDoShares(t *testing.T) {
	var g Group[int]
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]int, 5)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := g.Do(context.Background(), "k", func(context.Context, *Call) (int, error) {
				calls.Add(1)
				<-release
				return 42, nil
			})
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("fn ran %d times, want 1", calls.Load())
	}
	for _, v := range results {
		if v != 42 {
			t.Errorf("result %d, want 42", v)
		}
	}
}

func TestOneWaiterLeavingDoesNotCancel(t *testing.T) {
	var g Group[string]
	started := make(chan struct{})
	finish := make(chan struct{})
	fn := func(ctx context.Context, _ *Call) (string, error) {
		close(started)
		select {
		case <-finish:
			return "done", nil
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() { _, err := g.Do(ctxA, "k", fn); errA <- err }()
	<-started
	resB := make(chan string, 1)
	go func() { v, _ := g.Do(context.Background(), "k", fn); resB <- v }()
	time.Sleep(20 * time.Millisecond)
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter got %v", err)
	}
	close(finish)
	if v := <-resB; v != "done" {
		t.Errorf("the remaining waiter got %q, want done", v)
	}
}

func TestLastWaiterLeavingCancels(t *testing.T) {
	var g Group[int]
	cause := make(chan error, 1)
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = g.Do(ctx, "k", func(ctx context.Context, _ *Call) (int, error) {
			close(started)
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return 0, nil
		})
	}()
	<-started
	cancel()
	select {
	case err := <-cause:
		if !errors.Is(err, ErrAbandoned) {
			t.Errorf("cause = %v, want ErrAbandoned", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call was not cancelled")
	}
}
