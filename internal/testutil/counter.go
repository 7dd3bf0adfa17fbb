package testutil

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// HitCounter is an HTTP server on 127.0.0.1 that counts requests by path.
// Build tests make each RUN step fetch /<name> from it (busybox wget; RUN
// uses the host's network), so the counts prove which steps really ran.
type HitCounter struct {
	// Addr is host:port.
	Addr string
	mu   sync.Mutex
	hits map[string]int
}

// StartHitCounter starts a counter that stops when the test ends.
func StartHitCounter(t testing.TB) *HitCounter {
	t.Helper()
	c := &HitCounter{hits: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hits[strings.TrimPrefix(r.URL.Path, "/")]++
		c.mu.Unlock()
		fmt.Fprintln(w, "ok")
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	c.Addr = l.Addr().String()
	return c
}

// Hits returns the counts so far, by path without the leading slash.
func (c *HitCounter) Hits() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.hits))
	for k, v := range c.hits {
		out[k] = v
	}
	return out
}
