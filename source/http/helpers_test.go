package http

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
)

// file is one resource the test server serves.
type file struct {
	body        []byte
	etag        string    // sent as ETag if set
	modTime     time.Time // sent as Last-Modified if not zero
	disposition string    // sent as Content-Disposition if set
	status      int       // if set, the response is just this status
	redirect    string    // if set, a 302 to this path
}

// server is an HTTP server whose files a test changes as it goes and which
// counts what it answered.
type server struct {
	*httptest.Server

	mu          sync.Mutex
	files       map[string]file
	requests    map[string]int // per path
	notModified int
	block       chan struct{} // if set, requests wait for it to close
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{files: map[string]file{}, requests: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *server) set(path string, f file) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = f
}

func (s *server) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	f, ok := s.files[r.URL.Path]
	block := s.block
	s.mu.Unlock()
	if block != nil {
		<-block
	}
	switch {
	case !ok:
		http.NotFound(w, r)
	case f.status != 0:
		w.WriteHeader(f.status)
	case f.redirect != "":
		http.Redirect(w, r, f.redirect, http.StatusFound)
	default:
		if f.etag != "" {
			w.Header().Set("ETag", f.etag)
		}
		if f.disposition != "" {
			w.Header().Set("Content-Disposition", f.disposition)
		}
		http.ServeContent(&statusRecorder{ResponseWriter: w, s: s}, r, "", f.modTime, bytes.NewReader(f.body))
	}
}

func (s *server) notModifiedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notModified
}

// statusRecorder counts 304 answers before the client can see them.
type statusRecorder struct {
	http.ResponseWriter
	s *server
}

func (r *statusRecorder) WriteHeader(code int) {
	if code == http.StatusNotModified {
		r.s.mu.Lock()
		r.s.notModified++
		r.s.mu.Unlock()
	}
	r.ResponseWriter.WriteHeader(code)
}

func newCache(t *testing.T) *Cache {
	t.Helper()
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nopSnapshots is an ops.Snapshots for tests that never Exec.
type nopSnapshots struct{}

func (nopSnapshots) New(context.Context, ops.Ref, string) (ops.Active, error) {
	panic("unexpected New")
}

func newOp(t *testing.T, src graph.HTTPSource, snaps ops.Snapshots, c *Cache) *Op {
	t.Helper()
	if snaps == nil {
		snaps = nopSnapshots{}
	}
	o, err := NewOp(&src, digest.FromString(src.URL+src.Filename), snaps, c)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
