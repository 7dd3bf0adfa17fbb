package http

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestFetchConditional(t *testing.T) {
	t.Parallel()
	lm := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		name string
		f    file
	}{
		{"etag", file{body: []byte("v1"), etag: `"a1"`}},
		{"weak etag", file{body: []byte("v1"), etag: `W/"a1"`}},
		{"last-modified", file{body: []byte("v1"), modTime: lm}},
		{"both", file{body: []byte("v1"), etag: `"a1"`, modTime: lm}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newServer(t)
			c := newCache(t)
			s.set("/f", tt.f)

			first, err := c.Fetch(ctx, s.URL+"/f")
			if err != nil {
				t.Fatal(err)
			}
			want := Resource{Digest: digest.FromBytes(tt.f.body), Size: int64(len(tt.f.body)), ModTime: tt.f.modTime}
			if diff := cmp.Diff(want, first); diff != "" {
				t.Errorf("first fetch (-want +got):\n%s", diff)
			}
			second, err := c.Fetch(ctx, s.URL+"/f")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(first, second); diff != "" {
				t.Errorf("second fetch differs (-first +second):\n%s", diff)
			}
			if s.count("/f") != 2 || s.notModifiedCount() != 1 {
				t.Errorf("server saw %d requests, %d answered 304; want 2, 1", s.count("/f"), s.notModifiedCount())
			}
			f, err := c.Open(second.Digest)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if b, _ := io.ReadAll(f); string(b) != string(tt.f.body) {
				t.Errorf("body = %q, want %q", b, tt.f.body)
			}
		})
	}
}

func TestFetchChangedBody(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newServer(t)
	c := newCache(t)
	s.set("/f", file{body: []byte("v1"), etag: `"1"`})
	r1, err := c.Fetch(ctx, s.URL+"/f")
	if err != nil {
		t.Fatal(err)
	}
	s.set("/f", file{body: []byte("v2"), etag: `"2"`})
	r2, err := c.Fetch(ctx, s.URL+"/f")
	if err != nil {
		t.Fatal(err)
	}
	if r1.Digest == r2.Digest || r2.Digest != digest.FromString("v2") {
		t.Errorf("digests %s then %s; want a change to %s", r1.Digest, r2.Digest, digest.FromString("v2"))
	}
	if s.notModifiedCount() != 0 {
		t.Errorf("server answered 304 %d times for a changed body", s.notModifiedCount())
	}
}

func TestFetchWithoutValidators(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newServer(t)
	c := newCache(t)
	s.set("/f", file{body: []byte("x")})
	for range 2 {
		if _, err := c.Fetch(ctx, s.URL+"/f"); err != nil {
			t.Fatal(err)
		}
	}
	if s.count("/f") != 2 || s.notModifiedCount() != 0 {
		t.Errorf("got %d requests / %d 304s, want 2 full downloads", s.count("/f"), s.notModifiedCount())
	}
}

// A record whose body was removed is not used for a conditional request.
func TestFetchLostBody(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newServer(t)
	c := newCache(t)
	s.set("/f", file{body: []byte("x"), etag: `"x"`})
	r, err := c.Fetch(ctx, s.URL+"/f")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(c.blobPath(r.Digest)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(r.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("Open of a removed body: %v, want a not-found error", err)
	}
	if _, err := c.Fetch(ctx, s.URL+"/f"); err != nil {
		t.Fatal(err)
	}
	if s.notModifiedCount() != 0 {
		t.Error("conditional request sent without a body to reuse")
	}
	if f, err := c.Open(r.Digest); err != nil {
		t.Errorf("body not stored again: %v", err)
	} else {
		f.Close()
	}
}

func TestFetchErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newServer(t)
	c := newCache(t)
	s.set("/500", file{status: http.StatusInternalServerError})
	s.set("/403", file{status: http.StatusForbidden})
	s.set("/loop", file{redirect: "/loop"})
	tests := []struct {
		path  string
		want  string
		class error
	}{
		{"/missing", "404 Not Found", errdefs.ErrNotFound},
		{"/500", "500 Internal Server Error", errdefs.ErrUnavailable},
		{"/403", "403 Forbidden", errdefs.ErrPermissionDenied},
		{"/loop", "stopped after 10 redirects", errdefs.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := c.Fetch(ctx, s.URL+tt.path)
			if err == nil || err.Error() != tt.want || !errors.Is(err, tt.class) {
				t.Errorf("Fetch(%s) = %v, want %q in class %v", tt.path, err, tt.want, tt.class)
			}
		})
	}
	if n := s.count("/loop"); n != maxRedirects+1 { // the request and 10 redirects
		t.Errorf("redirect loop: %d requests, want %d", n, maxRedirects+1)
	}

	_, err := c.Fetch(ctx, "http://127.0.0.1:1/x")
	if !errdefs.IsUnavailable(err) || strings.Contains(err.Error(), "127.0.0.1:1/x") {
		t.Errorf("unreachable server: %v, want an unavailable error not repeating the URL", err)
	}
}

func TestFetchRedirect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newServer(t)
	c := newCache(t)
	s.set("/a", file{redirect: "/b"})
	s.set("/b", file{redirect: "/c"})
	s.set("/c", file{body: []byte("end"), disposition: `attachment; filename="c.tar.gz"`})
	r, err := c.Fetch(ctx, s.URL+"/a")
	if err != nil {
		t.Fatal(err)
	}
	if r.Digest != digest.FromString("end") || r.Filename != "c.tar.gz" {
		t.Errorf("Fetch through redirects = %+v", r)
	}
}

// Concurrent fetches of one URL share one request; a caller that gives up
// does not cancel the others.
func TestFetchShared(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c := newCache(t)
	s.set("/f", file{body: []byte("shared")})
	s.block = make(chan struct{})

	const n = 5
	url := s.URL + "/f"
	quitter, quit := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		ctx := context.Background()
		if i == 0 {
			ctx = quitter
		}
		wg.Go(func() {
			_, errs[i] = c.Fetch(ctx, url)
		})
	}
	waitFor(t, func() bool { return c.flights.Waiters(url) == n })
	quit()
	waitFor(t, func() bool {
		return c.flights.Waiters(url) == n-1
	})
	close(s.block)
	wg.Wait()
	if !errors.Is(errs[0], context.Canceled) {
		t.Errorf("cancelled caller: %v", errs[0])
	}
	for i, err := range errs[1:] {
		if err != nil {
			t.Errorf("caller %d: %v", i+1, err)
		}
	}
	if got := s.count("/f"); got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newServer(t)
	c := newCache(t)
	s.set("/old", file{body: []byte("old"), etag: `"o"`})
	s.set("/new", file{body: []byte("new"), etag: `"n"`})
	rOld, err := c.Fetch(ctx, s.URL+"/old")
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	for _, p := range []string{c.blobPath(rOld.Digest), c.dir + "/meta/" + urlKey(s.URL+"/old")} {
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	rNew, err := c.Fetch(ctx, s.URL+"/new")
	if err != nil {
		t.Fatal(err)
	}
	freed, err := c.Prune(ctx, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if freed < 3 {
		t.Errorf("freed %d bytes, want at least the old body", freed)
	}
	if _, err := c.Open(rOld.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("old body kept: %v", err)
	}
	f, err := c.Open(rNew.Digest)
	if err != nil {
		t.Fatalf("new body pruned: %v", err)
	}
	f.Close()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDispositionName(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		``:                                        "",
		`attachment`:                              "",
		`attachment; filename="a.tgz"`:            "a.tgz",
		`attachment; filename="../../etc/x"`:      "x",
		`attachment; filename="dir/"`:             "",
		`attachment; filename=".."`:               "",
		`attachment; filename*=UTF-8''%C3%A9.txt`: "é.txt",
		`inline; filename=plain.txt`:              "plain.txt",
		`garbage; =`:                              "",
	}
	for h, want := range tests {
		if got := dispositionName(h); got != want {
			t.Errorf("dispositionName(%q) = %q, want %q", h, got, want)
		}
	}
}
