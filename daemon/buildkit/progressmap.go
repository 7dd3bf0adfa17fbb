package buildkit

import (
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	digest "github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/progress"
)

// translator turns Kiln's progress events into BuildKit's status messages,
// for one Status stream. Kiln's extras go where BuildKit's clients show
// them: a step's cache-miss reason and the remote cache a hit came from
// as a line of the step's log, once each.
type translator struct {
	explained map[digest.Digest]bool
}

// warningLevel is BuildKit's level of a warning that does not fail the
// build.
const warningLevel = 1

// translate converts events, in order, into as few messages as keep that
// order: a message lists vertexes, then statuses, then logs, then
// warnings, so an event of an earlier kind after a later one starts a new
// message (a step's last log line must not arrive after its completion).
func (t *translator) translate(events []progress.Event) []*controlapi.StatusResponse {
	if len(events) == 0 {
		return nil
	}
	var out []*controlapi.StatusResponse
	cur, last := &controlapi.StatusResponse{}, -1
	add := func(kind int) {
		if kind < last {
			out = append(out, cur)
			cur = &controlapi.StatusResponse{}
		}
		last = kind
	}
	for _, e := range events {
		switch {
		case e.Vertex != nil:
			v := e.Vertex
			add(0)
			cur.Vertexes = append(cur.Vertexes, vertex(v))
			if v.Current > 0 || v.Total > 0 {
				add(1)
				cur.Statuses = append(cur.Statuses, &controlapi.VertexStatus{
					ID: v.Name, Vertex: v.Digest.String(), Name: v.Name, Current: v.Current, Total: v.Total,
					Timestamp: timestamppb.Now(), Started: ts(v.Started), Completed: ts(v.Completed),
				})
			}
			if line := t.explain(v); line != "" {
				add(2)
				cur.Logs = append(cur.Logs, &controlapi.VertexLog{Vertex: v.Digest.String(), Timestamp: timestamppb.Now(), Stream: 1, Msg: []byte(line)})
			}
		case e.Log != nil:
			add(2)
			cur.Logs = append(cur.Logs, &controlapi.VertexLog{
				Vertex: e.Log.Vertex.String(), Timestamp: timestamppb.New(e.Log.Time), Stream: int64(e.Log.Stream), Msg: e.Log.Data,
			})
		case e.Warning != nil:
			add(3)
			w := &controlapi.VertexWarning{Level: warningLevel, Short: []byte(e.Warning.Message)}
			if e.Warning.Vertex != "" {
				w.Vertex = e.Warning.Vertex.String()
			}
			cur.Warnings = append(cur.Warnings, w)
		}
	}
	return append(out, cur)
}

// explain returns the log line that says why a step missed the cache, or
// which remote cache it hit, the first time the vertex has one.
func (t *translator) explain(v *progress.VertexStatus) string {
	line := ""
	switch {
	case v.MissReason != "":
		line = "cache miss: " + v.MissReason + "\n"
	case v.Cached && v.CacheSource != "" && v.CacheSource != "local":
		line = "CACHED (" + v.CacheSource + ")\n"
	}
	if line == "" || t.explained[v.Digest] {
		return ""
	}
	if t.explained == nil {
		t.explained = map[digest.Digest]bool{}
	}
	t.explained[v.Digest] = true
	return line
}

func vertex(v *progress.VertexStatus) *controlapi.Vertex {
	out := &controlapi.Vertex{
		Digest: v.Digest.String(), Name: v.Name, Cached: v.Cached,
		Started: ts(v.Started), Completed: ts(v.Completed), Error: v.Error,
	}
	for _, in := range v.Inputs {
		out.Inputs = append(out.Inputs, in.String())
	}
	return out
}

func ts(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}
