package solver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/memory"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
)

// fakeExporter records the steps each build's session gets.
type fakeExporter struct {
	mu       sync.Mutex
	steps    []cache.ExportStep
	finished int
	failWith error
}

func (e *fakeExporter) Begin(context.Context, cache.Build) (cache.ExportSession, error) {
	return fakeSession2{e}, nil
}

type fakeSession2 struct{ e *fakeExporter }

func (s fakeSession2) Add(st cache.ExportStep) {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	s.e.steps = append(s.e.steps, st)
}

func (s fakeSession2) Finish(context.Context) error {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	s.e.finished++
	s.release()
	return s.e.failWith
}

func (s fakeSession2) Discard() {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	s.release()
}

func (s fakeSession2) release() {
	for i, st := range s.e.steps {
		if st.Ref != nil {
			_ = st.Ref.Release(context.Background())
			s.e.steps[i].Ref = nil
		}
	}
}

// summary lists "name source inResult hasRef" per step, sorted.
func (e *fakeExporter) summary() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, st := range e.steps {
		out = append(out, fmt.Sprintf("%s|%s|%v", st.Record.Description, st.Source, st.InResult))
	}
	sort.Strings(out)
	return out
}

func (e *fakeExporter) keys() map[string]digest.Digest {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]digest.Digest{}
	for _, st := range e.steps {
		out[st.Record.Description] = st.Record.Key
	}
	return out
}

func TestExportersGetEveryStep(t *testing.T) {
	w := newFakeWorker()
	shared := &fakeExporter{}
	s := New(w, memory.New(), WithExporters(shared))
	perBuild := &fakeExporter{}
	sess := &fakeSession{context: map[string]string{"a.txt": "A"}}
	root := dockerfile("echo one", "echo two", "a.txt")

	sol, err := s.Solve(context.Background(), []*graph.Vertex{root}, SolveOpt{Session: sess, Exporters: []Exporter{perBuild}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sol.FinishExports(context.Background()); err != nil {
		t.Fatal(err)
	}
	sol.Release(context.Background())
	want := []string{
		"[1/4] FROM busybox||true",
		"[2/4] RUN echo one||true",
		"[3/4] COPY||true",
		"[4/4] RUN echo two||true",
	}
	for _, e := range []*fakeExporter{shared, perBuild} {
		if diff := cmp.Diff(want, e.summary()); diff != "" {
			t.Errorf("exported steps (-want +got):\n%s", diff)
		}
		if e.finished != 1 {
			t.Errorf("Finish called %d times", e.finished)
		}
	}

	// A second build: every step is a local hit, exported again.
	shared.steps = nil
	sol, err = s.Solve(context.Background(), []*graph.Vertex{root}, SolveOpt{Session: sess})
	if err != nil {
		t.Fatal(err)
	}
	_ = sol.FinishExports(context.Background())
	sol.Release(context.Background())
	for _, st := range shared.summary() {
		if !strings.Contains(st, "|local|") {
			t.Errorf("second build exported %s, want a local hit", st)
		}
	}
	if l := w.leaked(); len(l) != 0 {
		t.Errorf("leaked handles: %v", l)
	}
}

func TestExportFailureFailsTheBuild(t *testing.T) {
	w := newFakeWorker()
	s := New(w, memory.New())
	bad := &fakeExporter{failWith: errors.New("registry refused the manifest")}
	sol, err := s.Solve(context.Background(), []*graph.Vertex{dockerfile("echo one", "echo two")}, SolveOpt{Session: &fakeSession{}, Exporters: []Exporter{bad}})
	if err != nil {
		t.Fatal(err)
	}
	defer sol.Release(context.Background())
	if err := sol.FinishExports(context.Background()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("FinishExports = %v, want the exporter's error", err)
	}
}

// fakeRemote serves results of another worker as remote hits.
type fakeRemote struct {
	name  string
	w     *fakeWorker
	hits  map[digest.Digest]map[string]string // key → files
	err   error                               // returned by every Lookup, if set
	fail  map[digest.Digest]bool              // keys whose Load fails
	loads atomic.Int32
	looks atomic.Int32
}

func (r *fakeRemote) Name() string { return r.name }

func (r *fakeRemote) Lookup(_ context.Context, key digest.Digest) (cache.Hit, error) {
	r.looks.Add(1)
	if r.err != nil {
		return nil, r.err
	}
	files, ok := r.hits[key]
	if !ok {
		return nil, cache.ErrNotFound
	}
	return fakeHit{r: r, key: key, files: files}, nil
}

type fakeHit struct {
	r     *fakeRemote
	key   digest.Digest
	files map[string]string
}

func (h fakeHit) Load(context.Context) (ops.Ref, error) {
	h.r.loads.Add(1)
	if h.r.fail[h.key] {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, errors.New("blob sha256:abc is corrupt"))
	}
	return h.r.w.commit(h.files), nil
}

// remoteOf builds root on a first solver and returns a remote cache of
// its results, by step name.
func remoteOf(t *testing.T, root *graph.Vertex, sess *fakeSession) (*fakeRemote, map[string]digest.Digest) {
	t.Helper()
	w1 := newFakeWorker()
	ex := &fakeExporter{}
	s1 := New(w1, memory.New(), WithExporters(ex))
	sol, err := s1.Solve(context.Background(), []*graph.Vertex{root}, SolveOpt{Session: sess})
	if err != nil {
		t.Fatal(err)
	}
	_ = sol.FinishExports(context.Background())
	sol.Release(context.Background())
	r := &fakeRemote{name: "redis", hits: map[digest.Digest]map[string]string{}, fail: map[digest.Digest]bool{}}
	ex.mu.Lock()
	for _, st := range ex.steps {
		r.hits[st.Record.Key] = w1.results[st.Record.Result]
	}
	ex.mu.Unlock()
	return r, ex.keys()
}

func TestRemoteHitsLoadLazily(t *testing.T) {
	sess := &fakeSession{context: map[string]string{"a.txt": "A"}}
	root := dockerfile("echo one", "echo two", "a.txt")
	remote, keys := remoteOf(t, root, sess)

	w := newFakeWorker()
	remote.w = w
	store := memory.New()
	s := New(w, store, WithRemoteCaches(remote))
	exp := &fakeExporter{}
	sol, rec := solve(t, s, root, sess, SolveOpt{Exporters: []Exporter{exp}})
	if sol.Stats.Cached != 4 {
		t.Errorf("stats %+v, want 4 cached", sol.Stats)
	}
	for _, name := range []string{"[2/4] RUN echo one", "[4/4] RUN echo two"} {
		if st := rec.get(name); !st.Cached || st.CacheSource != "redis" {
			t.Errorf("%s: cached=%v source=%q", name, st.Cached, st.CacheSource)
		}
	}
	if n := w.execCount("echo one") + w.execCount("echo two"); n != 0 {
		t.Errorf("%d steps ran", n)
	}
	// Only the root was materialised: the steps below it were not
	// downloaded.
	if n := remote.loads.Load(); n != 1 {
		t.Errorf("%d hits loaded, want 1 (the root)", n)
	}
	// The root, once imported, is in the local store.
	if _, err := store.Get(context.Background(), keys["[4/4] RUN echo two"]); err != nil {
		t.Errorf("imported root not recorded locally: %v", err)
	}
	if _, err := store.Get(context.Background(), keys["[2/4] RUN echo one"]); err == nil {
		t.Error("a hit nobody loaded was recorded locally")
	}
	// Exporters got the hits (with the hit, for copying its blobs).
	for _, st := range exp.steps {
		if st.Source == "redis" && st.Hit == nil {
			t.Errorf("%s: exported without its hit", st.Record.Description)
		}
	}
}

func TestRemoteHitThatFailsToLoadRuns(t *testing.T) {
	sess := &fakeSession{context: map[string]string{"a.txt": "A"}}
	root := dockerfile("echo one", "echo two", "a.txt")
	remote, keys := remoteOf(t, root, sess)
	remote.fail[keys["[4/4] RUN echo two"]] = true

	w := newFakeWorker()
	remote.w = w
	s := New(w, memory.New(), WithRemoteCaches(remote))
	rec := newRecorder()
	sol, err := s.Solve(context.Background(), []*graph.Vertex{root}, SolveOpt{Session: sess, Progress: rec})
	if err != nil {
		t.Fatalf("Solve: %v", err)
	}
	ref := sol.Results[0].Ref.(*fakeRef)
	if ref.files["/out"] != "echo two" || ref.files["/app/a.txt"] != "A" {
		t.Errorf("result files %v", ref.files)
	}
	sol.Release(context.Background())
	if n := w.execCount("echo two"); n != 1 {
		t.Errorf("the step whose hit failed to load ran %d times, want 1", n)
	}
	if n := w.execCount("echo one"); n != 0 {
		t.Errorf("the step below it ran %d times, want 0", n)
	}
	if !strings.Contains(strings.Join(rec.warns, "\n"), "corrupt") {
		t.Errorf("no warning about the unusable hit: %q", rec.warns)
	}
	if sol.Stats.Cached != 3 {
		t.Errorf("stats %+v, want 3 cached", sol.Stats)
	}
}

func TestRemoteFailureWarnsOncePerBuild(t *testing.T) {
	remote := &fakeRemote{name: "redis", err: errdefs.WithClass(errdefs.ErrUnavailable, errors.New("redis at x: connection refused"))}
	w := newFakeWorker()
	s := New(w, memory.New(), WithRemoteCaches(remote))
	_, rec := solve(t, s, dockerfile("echo one", "echo two"), &fakeSession{}, SolveOpt{})
	n := 0
	for _, m := range rec.warns {
		if strings.Contains(m, "cache redis:") {
			n++
		}
	}
	if n != 1 || remote.looks.Load() < 3 {
		t.Errorf("%d warnings for %d failed lookups, want 1: %q", n, remote.looks.Load(), rec.warns)
	}
}

func TestKeysOnlyLoadsNothing(t *testing.T) {
	sess := &fakeSession{context: map[string]string{"a.txt": "A"}}
	root := dockerfile("echo one", "echo two", "a.txt")
	remote, keys := remoteOf(t, root, sess)
	w := newFakeWorker()
	remote.w = w
	s := New(w, memory.New(), WithRemoteCaches(remote))
	sol, _ := solve(t, s, root, sess, SolveOpt{KeysOnly: true})
	if n := remote.loads.Load(); n != 0 {
		t.Errorf("%d remote hits loaded for a build that needs no result", n)
	}
	if len(sol.Results) != 1 || sol.Results[0].Ref != nil || sol.Results[0].Key != keys["[4/4] RUN echo two"] {
		t.Errorf("results %+v", sol.Results)
	}
}

// A remote hit that fails to load runs its step; the exporters, handed the
// hit already (whose blobs are bad), get the step's own result too.
func TestRemoteHitThatFailsToLoadIsExportedAgain(t *testing.T) {
	sess := &fakeSession{context: map[string]string{"a.txt": "A"}}
	root := dockerfile("echo one", "echo two", "a.txt")
	remote, keys := remoteOf(t, root, sess)
	bad := keys["[4/4] RUN echo two"]
	remote.fail[bad] = true
	w := newFakeWorker()
	remote.w = w
	ex := &fakeExporter{}
	s := New(w, memory.New(), WithRemoteCaches(remote), WithExporters(ex))
	sol, err := s.Solve(context.Background(), []*graph.Vertex{root}, SolveOpt{Session: sess, Progress: newRecorder()})
	if err != nil {
		t.Fatalf("Solve: %v", err)
	}
	ex.mu.Lock()
	var hits, refs int
	for _, st := range ex.steps {
		if st.Record.Key != bad {
			continue
		}
		switch {
		case st.Ref != nil:
			refs++
		case st.Hit != nil:
			hits++
		}
	}
	ex.mu.Unlock()
	if hits != 1 || refs != 1 {
		t.Errorf("the step whose hit failed to load was exported %d times as a hit and %d with its result, want 1 and 1", hits, refs)
	}
	if err := sol.FinishExports(context.Background()); err != nil {
		t.Fatal(err)
	}
	sol.Release(context.Background())
}
