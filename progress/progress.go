// Package progress carries build progress: per-vertex status, log lines and
// warnings, from the solver and the ops to whoever renders them (the
// daemon's Build stream, tests, the client's renderers).
//
// A Writer never blocks and never fails: a slow reader loses nothing, it is
// buffered. Writers travel in a context (WithWriter/FromContext) so that an
// op deep in the worker can report logs without knowing about builds.
//
// This package imports no other Kiln package.
package progress

import (
	"context"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// VertexStatus is the state of one vertex. Later events for a vertex replace
// earlier ones field by field as the renderer sees fit; the solver always
// sends the full state.
type VertexStatus struct {
	Digest      digest.Digest   `json:"digest"`
	Name        string          `json:"name,omitempty"`
	Inputs      []digest.Digest `json:"inputs,omitempty"`
	Started     *time.Time      `json:"started,omitempty"`
	Completed   *time.Time      `json:"completed,omitempty"`
	Cached      bool            `json:"cached,omitempty"`
	CacheSource string          `json:"cacheSource,omitempty"` // "local", "redis", ...
	Error       string          `json:"error,omitempty"`
	MissReason  string          `json:"missReason,omitempty"`
	Current     int64           `json:"current,omitempty"`
	Total       int64           `json:"total,omitempty"`
	Location    string          `json:"location,omitempty"` // "Dockerfile:3"
}

// Log is a chunk of a vertex's output.
type Log struct {
	Vertex digest.Digest `json:"vertex"`
	Stream int           `json:"stream"` // 1 stdout, 2 stderr
	Data   []byte        `json:"data"`
	Time   time.Time     `json:"time"`
}

// Warning is a message for the user about a vertex or the build.
type Warning struct {
	Vertex   digest.Digest `json:"vertex,omitempty"`
	Message  string        `json:"message"`
	Location string        `json:"location,omitempty"`
}

// Usage is what a step's container used (a RUN step), reported once it
// has ended. Figures that could not be measured are zero.
type Usage struct {
	Vertex digest.Digest `json:"vertex"`
	// Wall is the container's run time; CPU its processes' CPU time.
	Wall time.Duration `json:"wallNs"`
	CPU  time.Duration `json:"cpuNs"`
	// MemoryPeak is the most memory the step was charged at once, in
	// bytes (page cache included).
	MemoryPeak int64 `json:"memoryPeak,omitempty"`
	// IORead and IOWrite are bytes read from and written to storage.
	IORead  int64 `json:"ioRead,omitempty"`
	IOWrite int64 `json:"ioWrite,omitempty"`
	// OOMKilled is set when the kernel's OOM killer killed a process of
	// the step.
	OOMKilled bool `json:"oomKilled,omitempty"`
}

// End says how a build ended. A client sends it to its display as the
// last event, once it knows (the daemon's stream carries no End).
type End struct {
	Error string `json:"error,omitempty"`
}

// Event is one progress event; exactly one field is set.
type Event struct {
	Vertex  *VertexStatus `json:"vertex,omitempty"`
	Log     *Log          `json:"log,omitempty"`
	Warning *Warning      `json:"warning,omitempty"`
	Usage   *Usage        `json:"usage,omitempty"`
	End     *End          `json:"end,omitempty"`
}

// Writer receives progress events. Write must not block for long and must be
// safe for concurrent use.
type Writer interface {
	Write(Event)
}

// WriterFunc adapts a function to Writer.
type WriterFunc func(Event)

// Write calls f(e).
func (f WriterFunc) Write(e Event) { f(e) }

// Discard drops every event.
var Discard Writer = WriterFunc(func(Event) {})

type ctxKey struct{}

// WithWriter returns a context carrying w.
func WithWriter(ctx context.Context, w Writer) context.Context {
	return context.WithValue(ctx, ctxKey{}, w)
}

// FromContext returns the writer in ctx, or Discard.
func FromContext(ctx context.Context) Writer {
	if w, ok := ctx.Value(ctxKey{}).(Writer); ok && w != nil {
		return w
	}
	return Discard
}

// Multi fans events out to several writers. Writers can be added and removed
// while events flow (a step shared by two builds reports to both).
type Multi struct {
	mu sync.Mutex
	ws map[int]Writer
	n  int
}

// Add registers w and returns a function that removes it.
func (m *Multi) Add(w Writer) (remove func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ws == nil {
		m.ws = map[int]Writer{}
	}
	id := m.n
	m.n++
	m.ws[id] = w
	return func() {
		m.mu.Lock()
		delete(m.ws, id)
		m.mu.Unlock()
	}
}

// Write sends e to every registered writer.
func (m *Multi) Write(e Event) {
	m.mu.Lock()
	ws := make([]Writer, 0, len(m.ws))
	for _, w := range m.ws {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	for _, w := range ws {
		w.Write(e)
	}
}

// Tee returns a Writer that writes every event to each of ws in turn.
func Tee(ws ...Writer) Writer {
	return WriterFunc(func(e Event) {
		for _, w := range ws {
			w.Write(e)
		}
	})
}

// LogWriter returns an io.Writer that reports everything written to it as
// Log events of vertex v on stream (1 stdout, 2 stderr).
func LogWriter(w Writer, v digest.Digest, stream int) *StreamWriter {
	return &StreamWriter{w: w, v: v, stream: stream}
}

// StreamWriter is an io.Writer reporting log events.
type StreamWriter struct {
	w      Writer
	v      digest.Digest
	stream int
}

// Write reports p as one log event. It never fails.
func (s *StreamWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	data := make([]byte, len(p))
	copy(data, p)
	s.w.Write(Event{Log: &Log{Vertex: s.v, Stream: s.stream, Data: data, Time: time.Now()}})
	return len(p), nil
}
