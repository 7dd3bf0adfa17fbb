package history

import (
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/progress"
)

// TestRecorderUsageAndCriticalPath: a step's container usage lands on
// its Step, and the steps of the longest chain are marked critical.
func TestRecorderUsageAndCriticalPath(t *testing.T) {
	r := NewRecorder()
	withInputs := func(e progress.Event, inputs ...string) progress.Event {
		for _, in := range inputs {
			e.Vertex.Inputs = append(e.Vertex.Inputs, digest.FromString(in))
		}
		return e
	}
	for _, e := range []progress.Event{
		vertex("base", 0, 100*time.Millisecond, false, ""),
		withInputs(vertex("short", 100*time.Millisecond, 300*time.Millisecond, false, ""), "base"),
		withInputs(vertex("long", 100*time.Millisecond, 2*time.Second, false, ""), "base"),
		{Usage: &progress.Usage{Vertex: digest.FromString("long"), CPU: 1500 * time.Millisecond, MemoryPeak: 1 << 20}},
	} {
		r.Write(e)
	}
	steps, critical := r.Steps()
	if critical != 2*time.Second {
		t.Errorf("critical path %s, want 2s (base, then long)", critical)
	}
	want := map[string]bool{"base": true, "short": false, "long": true}
	for _, s := range steps {
		if s.Critical != want[s.Name] {
			t.Errorf("%s: critical %v, want %v", s.Name, s.Critical, want[s.Name])
		}
		if got := s.Usage != nil; got != (s.Name == "long") {
			t.Errorf("%s: usage %+v", s.Name, s.Usage)
		} else if got && s.Usage.CPU != 1500*time.Millisecond {
			t.Errorf("%s: CPU %s, want 1.5s", s.Name, s.Usage.CPU)
		}
	}
}
