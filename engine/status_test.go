package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/progress"
)

// events collects progress events.
type events struct {
	mu    sync.Mutex
	names []string
}

func (e *events) Write(ev progress.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.names = append(e.names, ev.Vertex.Name)
}

func (e *events) got() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.names...)
}

func vertex(name string) progress.Event {
	return progress.Event{Vertex: &progress.VertexStatus{Name: name}}
}

func TestStatusFollowsABuild(t *testing.T) {
	t.Parallel()
	r := newRunning()
	ctx := context.Background()

	// A follower that comes before the build waits for it.
	early := &events{}
	earlyDone := make(chan error, 1)
	go func() { earlyDone <- r.follow(ctx, "b1", early) }()

	own := &events{}
	pw := r.start("b1", own)
	pw.Write(vertex("one"))
	// A follower that comes late gets what was written so far.
	late := &events{}
	lateDone := make(chan error, 1)
	go func() { lateDone <- r.follow(ctx, "b1", late) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(late.got()) < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	pw.Write(vertex("two"))
	r.finish("b1")
	for _, done := range []chan error{earlyDone, lateDone} {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("follow = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a follower did not return when the build ended")
		}
	}
	for name, e := range map[string]*events{"build": own, "early": early, "late": late} {
		if got := e.got(); len(got) != 2 || got[0] != "one" || got[1] != "two" {
			t.Errorf("%s saw %v, want [one two]", name, got)
		}
	}
	// Just after the build, its progress is replayed whole.
	after := &events{}
	if err := r.follow(ctx, "b1", after); err != nil || len(after.got()) != 2 {
		t.Errorf("follow after the build = %v, %v", after.got(), err)
	}

	// A build that never comes: the follower gives up with ctx.
	stop := errors.New("gave up")
	cctx, cancel := context.WithCancelCause(ctx)
	cancel(stop)
	if err := r.follow(cctx, "never", &events{}); !errors.Is(err, stop) {
		t.Errorf("follow of an unknown build = %v, want the context's cause", err)
	}
}
