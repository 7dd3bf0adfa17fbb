package progress

import (
	"errors"
	"testing"
)

func TestInternalStep(t *testing.T) {
	t.Parallel()
	var got []VertexStatus
	w := WriterFunc(func(e Event) { got = append(got, *e.Vertex) })
	InternalStep(w, "exporting to image")(nil)
	InternalStep(w, "exporting cache")(errors.New("registry down"))
	if len(got) != 4 {
		t.Fatalf("got %d events, want a start and an end per step", len(got))
	}
	start, end := got[0], got[1]
	if start.Completed != nil || end.Completed == nil || start.Started == nil || end.Error != "" || start.Digest != end.Digest || start.Name != "exporting to image" {
		t.Errorf("step events = %+v, %+v", start, end)
	}
	if got[2].Digest == start.Digest {
		t.Error("two steps of different names share a digest")
	}
	if got[3].Error != "registry down" {
		t.Errorf("failed step's error = %q", got[3].Error)
	}
}
