package buildkit

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
)

func TestTranslate(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a, b := digest.FromString("a"), digest.FromString("b")
	events := []progress.Event{
		{Vertex: &progress.VertexStatus{Digest: a, Name: "[1/2] COPY a /a", Started: &now, MissReason: "a changed"}},
		{Log: &progress.Log{Vertex: a, Stream: 2, Data: []byte("out"), Time: now}},
		{Vertex: &progress.VertexStatus{Digest: a, Name: "[1/2] COPY a /a", Started: &now, Completed: &now, MissReason: "a changed"}},
		{Vertex: &progress.VertexStatus{Digest: b, Name: "[2/2] RUN x", Inputs: []digest.Digest{a}, Cached: true, CacheSource: "redis", Current: 5, Total: 10}},
		{Warning: &progress.Warning{Vertex: b, Message: "Dockerfile:2: careful"}},
	}
	var tr translator
	msgs := tr.translate(events)
	// A vertex after a log starts a new message: the completion does not
	// overtake the log line.
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2: %v", len(msgs), msgs)
	}
	var logs []string
	for _, m := range msgs {
		for _, l := range m.Logs {
			logs = append(logs, l.Vertex[:13]+" "+string(l.Msg))
		}
	}
	want := []string{a.String()[:13] + " cache miss: a changed\n", a.String()[:13] + " out", b.String()[:13] + " CACHED (redis)\n"}
	if d := cmp.Diff(want, logs); d != "" {
		t.Errorf("logs (-want +got):\n%s", d)
	}
	last := msgs[1]
	if len(last.Vertexes) != 2 || !last.Vertexes[1].Cached || last.Vertexes[1].Inputs[0] != a.String() || last.Vertexes[0].Completed == nil {
		t.Errorf("vertexes = %v", last.Vertexes)
	}
	if len(last.Statuses) != 1 || last.Statuses[0].Current != 5 || last.Statuses[0].Total != 10 {
		t.Errorf("statuses = %v", last.Statuses)
	}
	if len(last.Warnings) != 1 || string(last.Warnings[0].Short) != "Dockerfile:2: careful" || last.Warnings[0].Vertex != b.String() {
		t.Errorf("warnings = %v", last.Warnings)
	}
	// The miss reason is said once per vertex, however often the vertex
	// is reported.
	again := tr.translate(events[:1])
	if len(again) != 1 || len(again[0].Logs) != 0 {
		t.Errorf("miss reason repeated: %v", again)
	}
	if tr.translate(nil) != nil {
		t.Errorf("no events should make no message")
	}
}

func TestSyncMetadata(t *testing.T) {
	t.Parallel()
	md := syncMetadata("context", sessionSyncOptions([]string{"a/*"}, []string{"ignored", "héllo"}, nil))
	if got := md.Get("dir-name"); len(got) != 1 || got[0] != "context" {
		t.Errorf("dir-name = %v", got)
	}
	if got := md.Get("include-patterns"); len(got) != 1 || got[0] != "a/*" || len(md.Get("include-patterns-encoded")) != 0 {
		t.Errorf("include-patterns = %v", got)
	}
	if got := md.Get("exclude-patterns"); len(got) != 2 || got[1] != "h%C3%A9llo" || md.Get("exclude-patterns-encoded")[0] != "1" {
		t.Errorf("exclude-patterns = %v, encoded %v", got, md.Get("exclude-patterns-encoded"))
	}
	if got := md.Get("followpaths"); got != nil {
		t.Errorf("followpaths = %v, want none", got)
	}
}

func sessionSyncOptions(include, exclude, follow []string) session.SyncOptions {
	return session.SyncOptions{IncludePatterns: include, ExcludePatterns: exclude, FollowPaths: follow}
}
