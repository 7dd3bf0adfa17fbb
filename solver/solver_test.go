package solver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/memory"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/progress"
)

// dockerfile builds the graph of
//
//	FROM busybox
//	RUN <run1>
//	COPY <copySrc> /app
//	RUN <run2>
func dockerfile(run1, run2 string, copySrc ...string) *graph.Vertex {
	img := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Image: &graph.ImageSource{Ref: "docker.io/library/busybox:latest@sha256:aaaa"}}},
		graph.Meta{Name: "[1/4] FROM busybox", StepID: "s/0"})
	ctx := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Local: &graph.LocalSource{Name: "context"}}}, graph.Meta{Name: "load context"})
	r1 := graph.NewVertex(graph.Op{Exec: &graph.ExecOp{Args: strings.Fields(run1), Env: []string{"A=1"}}},
		graph.Meta{Name: "[2/4] RUN " + run1, StepID: "s/1", Location: &graph.Location{File: "Dockerfile", Start: 2, End: 2}}, img)
	cp := graph.NewVertex(graph.Op{File: &graph.FileOp{Base: 0, Actions: []graph.FileAction{{Copy: &graph.CopyAction{Input: 1, Src: copySrc, Dest: "/app"}}}}},
		graph.Meta{Name: "[3/4] COPY", StepID: "s/2"}, r1, ctx)
	return graph.NewVertex(graph.Op{Exec: &graph.ExecOp{Args: strings.Fields(run2)}},
		graph.Meta{Name: "[4/4] RUN " + run2, StepID: "s/3", Location: &graph.Location{File: "Dockerfile", Start: 4, End: 4}}, cp)
}

type recorder struct {
	mu     sync.Mutex
	status map[string]progress.VertexStatus // last status by name
	warns  []string
}

func newRecorder() *recorder { return &recorder{status: map[string]progress.VertexStatus{}} }

func (r *recorder) Write(e progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Vertex != nil {
		r.status[e.Vertex.Name] = *e.Vertex
	}
	if e.Warning != nil {
		r.warns = append(r.warns, e.Warning.Message)
	}
}

func (r *recorder) get(name string) progress.VertexStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status[name]
}

func solve(t *testing.T, s *Solver, root *graph.Vertex, sess *fakeSession, opt SolveOpt) (*Solution, *recorder) {
	t.Helper()
	rec := newRecorder()
	opt.Session = sess
	opt.Progress = rec
	sol, err := s.Solve(context.Background(), []*graph.Vertex{root}, opt)
	if err != nil {
		t.Fatalf("Solve: %v", err)
	}
	sol.Release(context.Background())
	return sol, rec
}

func TestCacheKeys(t *testing.T) {
	w := newFakeWorker()
	s := New(w, memory.New(), WithMaxParallelism(2))
	sess := &fakeSession{context: map[string]string{"a.txt": "A", "b.txt": "B"}}

	// Cold build: everything runs.
	sol, _ := solve(t, s, dockerfile("true one", "true two", "a.txt"), sess, SolveOpt{})
	if sol.Stats.Cached != 0 || w.execCount("true one") != 1 || w.execCount("true two") != 1 {
		t.Fatalf("cold build: stats %+v, execs %v", sol.Stats, w.execs)
	}

	// Same build again: every cacheable step is cached (the context is
	// always loaded, never cached).
	sol, rec := solve(t, s, dockerfile("true one", "true two", "a.txt"), sess, SolveOpt{})
	if sol.Stats.Cached != sol.Stats.Steps-1 {
		t.Errorf("rebuild: %d of %d steps cached, want all but the context", sol.Stats.Cached, sol.Stats.Steps)
	}
	if !rec.get("[4/4] RUN true two").Cached || rec.get("[4/4] RUN true two").CacheSource != "local" {
		t.Errorf("last step not reported as CACHED local: %+v", rec.get("[4/4] RUN true two"))
	}

	// b.txt changes: COPY a.txt is not invalidated.
	sess.context["b.txt"] = "B2"
	solve(t, s, dockerfile("true one", "true two", "a.txt"), sess, SolveOpt{})
	if n := w.execCount("true two"); n != 1 {
		t.Errorf("change to b.txt re-ran the step after COPY a.txt (%d runs)", n)
	}

	// a.txt changes: COPY and the RUN after it re-run, and say why.
	sess.context["a.txt"] = "A2"
	_, rec = solve(t, s, dockerfile("true one", "true two", "a.txt"), sess, SolveOpt{})
	if n := w.execCount("true two"); n != 2 {
		t.Errorf("change to a.txt: RUN after COPY ran %d times, want 2", n)
	}
	if n := w.execCount("true one"); n != 1 {
		t.Errorf("change to a.txt re-ran the RUN before COPY (%d runs)", n)
	}
	if got := rec.get("[3/4] COPY").MissReason; got != "a.txt changed" {
		t.Errorf("COPY miss reason = %q, want %q", got, "a.txt changed")
	}
	if got := rec.get("[4/4] RUN true two").MissReason; !strings.Contains(got, "previous step changed: [3/4] COPY") {
		t.Errorf("RUN miss reason = %q", got)
	}

	// Editing the first RUN re-runs it and everything after it.
	_, rec = solve(t, s, dockerfile("true uno", "true two", "a.txt"), sess, SolveOpt{})
	if w.execCount("true uno") != 1 || w.execCount("true two") != 3 {
		t.Errorf("edit of first RUN: execs %v", w.execs)
	}
	if got := rec.get("[2/4] RUN true uno").MissReason; got != `command changed: "true one" → "true uno"` {
		t.Errorf("RUN miss reason = %q", got)
	}

	// --no-cache re-runs everything.
	sol, _ = solve(t, s, dockerfile("true uno", "true two", "a.txt"), sess, SolveOpt{NoCache: true})
	if sol.Stats.Cached != 0 || w.execCount("true uno") != 2 {
		t.Errorf("--no-cache: stats %+v execs %v", sol.Stats, w.execs)
	}
	if l := w.leaked(); len(l) > 0 {
		t.Errorf("leaked ref handles: %v", l)
	}
}

func TestStaleRecordIsAMiss(t *testing.T) {
	w := newFakeWorker()
	st := memory.New()
	s := New(w, st)
	sess := &fakeSession{context: map[string]string{"a.txt": "A"}}
	root := dockerfile("true one", "true two", "a.txt")
	solve(t, s, root, sess, SolveOpt{})
	// Remove every stored result, as a prune would.
	w.mu.Lock()
	ids := make([]string, 0, len(w.results))
	for id := range w.results {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	for _, id := range ids {
		w.remove(id)
	}
	sol, _ := solve(t, s, root, sess, SolveOpt{})
	if sol.Stats.Cached != 0 || w.execCount("true two") != 2 {
		t.Errorf("stale records were used: stats %+v execs %v", sol.Stats, w.execs)
	}
}

func TestEnvChangeExplained(t *testing.T) {
	w := newFakeWorker()
	s := New(w, memory.New())
	mk := func(v string) *graph.Vertex {
		return graph.NewVertex(graph.Op{Exec: &graph.ExecOp{Args: []string{"true"}, Root: graph.NoInput, Env: []string{"VERSION=" + v}}}, graph.Meta{Name: "run", StepID: "x"})
	}
	solve(t, s, mk("1.2"), &fakeSession{}, SolveOpt{})
	_, rec := solve(t, s, mk("1.3"), &fakeSession{}, SolveOpt{})
	if got := rec.get("run").MissReason; got != "ARG/ENV VERSION: 1.2 → 1.3" {
		t.Errorf("miss reason = %q", got)
	}
}

func parallelGraph(n int, d string) *graph.Vertex {
	var stages []*graph.Vertex
	for i := 0; i < n; i++ {
		stages = append(stages, graph.NewVertex(graph.Op{Exec: &graph.ExecOp{Args: []string{"sleep", d, string(rune('a' + i))}, Root: graph.NoInput}}, graph.Meta{}))
	}
	return graph.NewVertex(graph.Op{Merge: &graph.MergeOp{}}, graph.Meta{}, stages...)
}

func TestParallelismBound(t *testing.T) {
	for _, max := range []int{1, 2, 4} {
		w := newFakeWorker()
		s := New(w, memory.New(), WithMaxParallelism(max))
		solve(t, s, parallelGraph(4, "30ms"), &fakeSession{}, SolveOpt{})
		got := int(w.maxRunning.Load())
		if got > max {
			t.Errorf("max-parallelism %d: %d executions ran at once", max, got)
		}
		if max > 1 && got < 2 {
			t.Errorf("max-parallelism %d: independent steps never overlapped", max)
		}
	}
}

// TestSelfAdmission: a step whose executor asks for its admission itself
// (ops.Admit) prepares beside the running steps but runs within the
// bound; one that never releases its admission is released when it ends.
func TestSelfAdmission(t *testing.T) {
	tests := []struct {
		name          string
		forgetRelease bool
	}{
		{"executor releases", false},
		{"solver releases what the executor kept", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newFakeWorker()
			w.selfAdmit, w.forgetRelease, w.prepare = true, tt.forgetRelease, 20*time.Millisecond
			s := New(w, memory.New(), WithMaxParallelism(1))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := s.Solve(ctx, []*graph.Vertex{parallelGraph(4, "30ms")}, SolveOpt{Session: &fakeSession{}}); err != nil {
				t.Fatalf("Solve: %v", err)
			}
			if got := w.maxRunning.Load(); got != 1 {
				t.Errorf("%d steps ran at once, want 1 (max-parallelism 1)", got)
			}
			if got := w.maxInExec.Load(); got < 2 {
				t.Errorf("at most %d steps were in Exec at once: preparing never overlapped a running step", got)
			}
		})
	}
}

func TestConcurrentBuildsShareSteps(t *testing.T) {
	w := newFakeWorker()
	s := New(w, memory.New(), WithMaxParallelism(4))
	root := parallelGraph(3, "50ms")
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Solve(context.Background(), []*graph.Vertex{root}, SolveOpt{Session: &fakeSession{}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, c := range []string{"sleep 50ms a", "sleep 50ms b", "sleep 50ms c"} {
		if n := w.execCount(c); n != 1 {
			t.Errorf("%s ran %d times across two concurrent builds, want 1", c, n)
		}
	}
}

func TestCancel(t *testing.T) {
	w := newFakeWorker()
	s := New(w, memory.New())
	root := graph.NewVertex(graph.Op{Exec: &graph.ExecOp{Args: []string{"block"}, Root: graph.NoInput}}, graph.Meta{Name: "block"})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.Solve(ctx, []*graph.Vertex{root}, SolveOpt{})
		errc <- err
	}()
	<-w.started
	cancel()
	select {
	case <-w.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("step was not cancelled")
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Solve = %v, want context.Canceled", err)
	}
}

func TestCancelOneOfTwoBuilds(t *testing.T) {
	w := newFakeWorker()
	s := New(w, memory.New())
	root := graph.NewVertex(graph.Op{Exec: &graph.ExecOp{Args: []string{"sleep", "300ms"}, Root: graph.NoInput}}, graph.Meta{Name: "sleep"})
	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	errB := make(chan error, 1)
	go func() { _, err := s.Solve(ctxA, []*graph.Vertex{root}, SolveOpt{}); errA <- err }()
	time.Sleep(50 * time.Millisecond)
	go func() { _, err := s.Solve(context.Background(), []*graph.Vertex{root}, SolveOpt{}); errB <- err }()
	time.Sleep(50 * time.Millisecond)
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Errorf("build A = %v, want canceled", err)
	}
	if err := <-errB; err != nil {
		t.Errorf("build B = %v, want success (the shared step must keep running)", err)
	}
	if n := w.execCount("sleep 300ms"); n != 1 {
		t.Errorf("shared step ran %d times, want 1", n)
	}
}

func TestFailure(t *testing.T) {
	w := newFakeWorker()
	st := memory.New()
	s := New(w, st, WithMaxParallelism(2))
	bad := graph.NewVertex(graph.Op{Exec: &graph.ExecOp{Args: []string{"fail", "now"}, Root: graph.NoInput}},
		graph.Meta{Name: "[2/3] RUN fail now", Location: &graph.Location{File: "Dockerfile", Start: 7, End: 7}})
	slow := graph.NewVertex(graph.Op{Exec: &graph.ExecOp{Args: []string{"block"}, Root: graph.NoInput}}, graph.Meta{Name: "slow"})
	root := graph.NewVertex(graph.Op{Merge: &graph.MergeOp{}}, graph.Meta{}, bad, slow)
	w.failGate = make(chan struct{})
	go func() { <-w.started; close(w.failGate) }()
	_, err := s.Solve(context.Background(), []*graph.Vertex{root}, SolveOpt{})
	var ve *errdefs.VertexError
	if !errors.As(err, &ve) {
		t.Fatalf("Solve = %v, want a VertexError", err)
	}
	want := `Dockerfile:7: [2/3] RUN fail now: process "fail now" did not complete successfully: exit code: 1`
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err.Error(), want)
	}
	select {
	case <-w.cancelled:
	case <-time.After(5 * time.Second):
		t.Error("the parallel step was not cancelled")
	}
	// Nothing half-done enters the cache.
	_ = st.Walk(context.Background(), func(r cache.Record) error {
		t.Errorf("record written by a failed build: %s", r.Description)
		return nil
	})
}
