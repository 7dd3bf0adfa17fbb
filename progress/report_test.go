package progress

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
)

// graphEvents is a build of two stages copied into a third: a → b → d,
// a → c → d, with b the slow one, plus an internal step and a cached one.
func graphEvents() []Event {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) *time.Time { t := t0.Add(time.Duration(ms) * time.Millisecond); return &t }
	a, b, c, d, x := digest.FromString("a"), digest.FromString("b"), digest.FromString("c"), digest.FromString("d"), digest.FromString("x")
	return []Event{
		{Vertex: &VertexStatus{Digest: x, Name: "[internal] load build definition", Started: at(0), Completed: at(300)}},
		{Vertex: &VertexStatus{Digest: a, Name: "FROM busybox", Started: at(300), Completed: at(400)}},
		{Vertex: &VertexStatus{Digest: b, Name: "RUN sleep 2", Inputs: []digest.Digest{a}, Started: at(400)}},
		{Vertex: &VertexStatus{Digest: c, Name: "RUN true", Inputs: []digest.Digest{a}, Started: at(400), Completed: at(400), Cached: true}},
		{Usage: &Usage{Vertex: b, Wall: 2 * time.Second, CPU: 120 * time.Millisecond, MemoryPeak: 21 << 20, IOWrite: 20 << 20}},
		{Vertex: &VertexStatus{Digest: b, Name: "RUN sleep 2", Inputs: []digest.Digest{a}, Started: at(400), Completed: at(2500)}},
		{Log: &Log{Vertex: b, Data: []byte("ignored")}},
		{Vertex: &VertexStatus{Digest: d, Name: "COPY --from=b", Inputs: []digest.Digest{b, c}, Started: at(2500), Completed: at(2700)}},
	}
}

func TestCollectorReport(t *testing.T) {
	t.Parallel()
	var c Collector
	for _, e := range graphEvents() {
		c.Write(e)
	}
	steps := c.Steps()
	if len(steps) != 5 {
		t.Fatalf("%d steps, want 5", len(steps))
	}
	if u := steps[2].Usage; u == nil || u.CPU != 120*time.Millisecond {
		t.Errorf("usage of RUN sleep 2: %+v", u)
	}
	r := c.Report()
	var names []string
	for _, s := range r.CriticalPath {
		names = append(names, s.Name)
	}
	if d := cmp.Diff([]string{"FROM busybox", "RUN sleep 2", "COPY --from=b"}, names); d != "" {
		t.Errorf("critical path (-want +got):\n%s", d)
	}
	if r.Critical != 2400*time.Millisecond {
		t.Errorf("critical %v, want 2.4s", r.Critical)
	}
	var slow []string
	for _, s := range r.Slowest {
		slow = append(slow, s.Name)
	}
	if d := cmp.Diff([]string{"RUN sleep 2", "[internal] load build definition", "COPY --from=b"}, slow); d != "" {
		t.Errorf("slowest (-want +got):\n%s", d)
	}
	want := []string{
		"Slowest steps:",
		"    2.10s  RUN sleep 2  (CPU 0.12s, peak 21 MiB, I/O 0 B read, 20 MiB written)",
		"    0.30s  [internal] load build definition",
		"    0.20s  COPY --from=b",
		"Critical path: 2.40s over 3 steps; RUN sleep 2 took 2.10s of it",
	}
	if d := cmp.Diff(want, r.Lines()); d != "" {
		t.Errorf("lines (-want +got):\n%s", d)
	}
}

func TestAnalyzeEdgeCases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		steps    []Step
		critical time.Duration
		path     int
	}{
		{"empty", nil, 0, 0},
		{"one step without edges", []Step{{Digest: "sha256:1", Name: "FROM x", Duration: time.Second}}, time.Second, 1},
		{"all cached", []Step{{Digest: "sha256:1", Name: "a", Cached: true}, {Digest: "sha256:2", Name: "b", Inputs: []digest.Digest{"sha256:1"}, Cached: true}}, 0, 1},
		{"input never reported", []Step{{Digest: "sha256:2", Name: "b", Inputs: []digest.Digest{"sha256:9"}, Duration: time.Second}}, time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Analyze(tt.steps)
			if r.Critical != tt.critical || len(r.CriticalPath) != tt.path {
				t.Errorf("critical %v over %d steps, want %v over %d", r.Critical, len(r.CriticalPath), tt.critical, tt.path)
			}
			if len(r.Lines()) == 0 && tt.critical > 0 {
				t.Error("no report lines")
			}
		})
	}
}

func TestPlainShowsUsage(t *testing.T) {
	t.Parallel()
	ch := make(chan Event)
	go func() {
		for _, e := range graphEvents() {
			ch <- e
		}
		close(ch)
	}()
	var buf strings.Builder
	sum, err := Display(t.Context(), ModePlain, &buf, ch)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "DONE 2.1s (CPU 0.12s, peak 21 MiB, I/O 0 B read, 20 MiB written)\n") {
		t.Errorf("plain output has no usage on the DONE line:\n%s", buf.String())
	}
	if sum.Report.Critical != 2400*time.Millisecond {
		t.Errorf("summary report: %+v", sum.Report)
	}
}
