package daemon

import (
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/progress"
)

// TestBatchesKeepOrder: a step's last log line, then its DONE, then a
// warning, then the next step's start arrive in that order.
func TestBatchesKeepOrder(t *testing.T) {
	d := digest.FromString("a")
	events := []progress.Event{
		{Vertex: &progress.VertexStatus{Digest: d, Name: "a"}},
		{Log: &progress.Log{Vertex: d, Data: []byte("line")}},
		{Vertex: &progress.VertexStatus{Digest: d, Name: "a done"}},
		{Warning: &progress.Warning{Message: "w"}},
		{Log: &progress.Log{Vertex: d, Data: []byte("late")}},
	}
	var got []string
	for _, b := range batches(events) {
		for _, v := range b.GetVertexes() {
			got = append(got, "v:"+v.GetName())
		}
		for _, l := range b.GetLogs() {
			got = append(got, "l:"+string(l.GetData()))
		}
		for _, w := range b.GetWarnings() {
			got = append(got, "w:"+w.GetMessage())
		}
	}
	want := []string{"v:a", "l:line", "v:a done", "w:w", "l:late"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
