package progress

import (
	"time"

	digest "github.com/opencontainers/go-digest"
)

// InternalStep reports a step that is not a graph vertex (loading the
// Dockerfile, exporting the image, writing a cache) as started, and
// returns the function that reports it completed, with err when it
// failed. The step's digest is derived from its name.
//
//	done := progress.InternalStep(pw, "exporting to image")
//	err := export()
//	done(err)
func InternalStep(w Writer, name string) func(err error) {
	start := time.Now()
	d := InternalDigest(name)
	w.Write(Event{Vertex: &VertexStatus{Digest: d, Name: name, Started: &start}})
	return func(err error) {
		now := time.Now()
		st := &VertexStatus{Digest: d, Name: name, Started: &start, Completed: &now}
		if err != nil {
			st.Error = err.Error()
		}
		w.Write(Event{Vertex: st})
	}
}

// InternalDigest is the digest of the internal step name: the vertex its
// log lines (Event.Log) are written under.
func InternalDigest(name string) digest.Digest {
	return digest.FromString("kiln/internal\x00" + name)
}
