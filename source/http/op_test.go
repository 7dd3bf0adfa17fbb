package http

import (
	"context"
	"errors"
	"github.com/kiln-build/kiln/internal/snaptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/snapshot"
)

func TestNewOpInvalid(t *testing.T) {
	t.Parallel()
	c := newCache(t)
	tests := []struct {
		name string
		src  graph.HTTPSource
		want string
	}{
		{"scheme", graph.HTTPSource{URL: "ftp://h/x"}, "ADD ftp://h/x: not an http or https URL"},
		{"no host", graph.HTTPSource{URL: "http:///x"}, "not an http or https URL"},
		{"slash in name", graph.HTTPSource{URL: "http://h/x", Filename: "a/b"}, `invalid file name "a/b"`},
		{"dotdot name", graph.HTTPSource{URL: "http://h/x", Filename: ".."}, `invalid file name ".."`},
		{"mode", graph.HTTPSource{URL: "http://h/x", Mode: 0o100644}, "invalid mode 0100644"},
		{"owner", graph.HTTPSource{URL: "http://h/x", UID: -1}, "invalid owner -1:0"},
		{"checksum", graph.HTTPSource{URL: "http://h/x", Checksum: "sha256:abc"}, `invalid checksum "sha256:abc"`},
		{"password redacted", graph.HTTPSource{URL: "ftp://u:secret@h/x"}, "ADD ftp://u:xxxxx@h/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			_, err := NewOp(&src, digest.FromString("op"), nopSnapshots{}, c)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("NewOp(%+v) = %v, want an invalid-argument error containing %q", tt.src, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	if _, err := NewOp(nil, "", nopSnapshots{}, c); !errdefs.IsInvalidArgument(err) {
		t.Errorf("NewOp(nil) = %v", err)
	}
}

func TestName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url, filename, disposition, want string
	}{
		{"http://h/dir/app.tar.gz", "", "", "app.tar.gz"},
		{"http://h/dir/app.tar.gz?x=1#frag", "", "", "app.tar.gz"},
		{"http://h/dir/", "", "", "dir"},
		{"http://h/a%20b.txt", "", "", "a b.txt"},
		{"http://h/", "", "", "index"},
		{"http://h", "", "", "index"},
		{"http://h/x/..", "", "", "index"},
		{"http://h/download?id=3", "", "real.zip", "real.zip"},
		{"http://h/x.bin", "given", "real.zip", "given"},
	}
	for _, tt := range tests {
		o := &Op{src: graph.HTTPSource{URL: tt.url, Filename: tt.filename}}
		if got := o.name(tt.disposition); got != tt.want {
			t.Errorf("name(%q, Filename %q, disposition %q) = %q, want %q", tt.url, tt.filename, tt.disposition, got, tt.want)
		}
	}
}

func TestCacheMap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newServer(t)
	c := newCache(t)
	lm := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	s.set("/f", file{body: []byte("v1"), etag: `"1"`, modTime: lm})
	key := func(src graph.HTTPSource) digest.Digest {
		t.Helper()
		cm, err := newOp(t, src, nil, c).CacheMap(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return cm.Digest
	}
	src := graph.HTTPSource{URL: s.URL + "/f"}
	k1 := key(src)
	if k2 := key(src); k2 != k1 || s.notModifiedCount() != 1 {
		t.Errorf("second CacheMap: key %s (was %s), %d 304s; want the same key from a 304", k2, k1, s.notModifiedCount())
	}
	if k := key(graph.HTTPSource{URL: s.URL + "/f", Mode: 0o755}); k == k1 {
		t.Error("mode not in the key")
	}
	s.set("/f", file{body: []byte("v1"), etag: `"1b"`, modTime: lm.Add(time.Hour)})
	k3 := key(src)
	if k3 == k1 {
		t.Error("a new Last-Modified time did not change the key")
	}
	s.set("/f", file{body: []byte("v2"), etag: `"2"`, modTime: lm.Add(time.Hour)})
	if k4 := key(src); k4 == k3 {
		t.Error("a new body did not change the key")
	}

	// With a checksum the key needs no request.
	before := s.count("/f")
	sum := digest.FromString("v2")
	k5 := key(graph.HTTPSource{URL: s.URL + "/f", Checksum: sum})
	if s.count("/f") != before {
		t.Error("CacheMap with a checksum sent a request")
	}
	if k6 := key(graph.HTTPSource{URL: s.URL + "/f", Checksum: digest.FromString("v1")}); k6 == k5 {
		t.Error("checksum not in the key")
	}
}

func TestCacheMapErrors(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.set("/boom", file{status: 500})
	c := newCache(t)
	for path, want := range map[string]string{
		"/missing": "ADD " + s.URL + "/missing: 404 Not Found",
		"/boom":    "ADD " + s.URL + "/boom: 500 Internal Server Error",
	} {
		_, err := newOp(t, graph.HTTPSource{URL: s.URL + path}, nil, c).CacheMap(context.Background())
		if err == nil || err.Error() != want {
			t.Errorf("CacheMap(%s) = %v, want %q", path, err, want)
		}
	}
}

// result describes the one file of an http source's result.
type result struct {
	Names    []string
	Data     string
	Mode     os.FileMode
	UID, GID uint32
	ModTime  time.Time
}

func readResult(t *testing.T, r any) result {
	t.Helper()
	ref, ok := r.(*snaptest.Ref)
	if !ok {
		t.Fatalf("result is a %T", r)
	}
	var res result
	err := ref.WithDir(func(dir string) error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			res.Names = append(res.Names, e.Name())
		}
		if len(ents) != 1 {
			return nil
		}
		p := filepath.Join(dir, ents[0].Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		res.Data, res.Mode, res.UID, res.GID, res.ModTime = string(b), fi.Mode(), st.Uid, st.Gid, fi.ModTime().UTC()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestExec(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs snapshots (root)")
	}
	lm := time.Date(2022, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, kind := range []string{snapshot.KindOverlay, snapshot.KindNative} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			snaps := snaptest.New(t, kind)
			s := newServer(t)
			c := newCache(t)
			s.set("/dl/app.tgz", file{body: []byte("gzipped?"), etag: `"e"`, modTime: lm})
			s.set("/plain", file{body: []byte("no dates")})
			s.set("/cd", file{body: []byte("disp"), disposition: `attachment; filename="named.txt"`})
			s.set("/go", file{redirect: "/dl/app.tgz"})
			tests := []struct {
				name string
				src  graph.HTTPSource
				want result
			}{
				{"defaults", graph.HTTPSource{URL: s.URL + "/dl/app.tgz"},
					result{Names: []string{"app.tgz"}, Data: "gzipped?", Mode: 0o600, ModTime: lm}},
				{"no last-modified", graph.HTTPSource{URL: s.URL + "/plain"},
					result{Names: []string{"plain"}, Data: "no dates", Mode: 0o600, ModTime: time.Unix(0, 0).UTC()}},
				{"filename mode owner", graph.HTTPSource{URL: s.URL + "/dl/app.tgz", Filename: "x.bin", Mode: 0o4755, UID: 1000, GID: 50},
					result{Names: []string{"x.bin"}, Data: "gzipped?", Mode: 0o755 | os.ModeSetuid, UID: 1000, GID: 50, ModTime: lm}},
				{"content-disposition", graph.HTTPSource{URL: s.URL + "/cd"},
					result{Names: []string{"named.txt"}, Data: "disp", Mode: 0o600, ModTime: time.Unix(0, 0).UTC()}},
				{"redirect keeps the original name", graph.HTTPSource{URL: s.URL + "/go"},
					result{Names: []string{"go"}, Data: "gzipped?", Mode: 0o600, ModTime: lm}},
				{"checksum", graph.HTTPSource{URL: s.URL + "/dl/app.tgz", Checksum: digest.FromString("gzipped?")},
					result{Names: []string{"app.tgz"}, Data: "gzipped?", Mode: 0o600, ModTime: lm}},
				{"sha512 checksum", graph.HTTPSource{URL: s.URL + "/plain", Checksum: digest.SHA512.FromString("no dates")},
					result{Names: []string{"plain"}, Data: "no dates", Mode: 0o600, ModTime: time.Unix(0, 0).UTC()}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					o := newOp(t, tt.src, snaps, c)
					if _, err := o.CacheMap(ctx); err != nil {
						t.Fatal(err)
					}
					ref, err := o.Exec(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(tt.want, readResult(t, ref)); diff != "" {
						t.Errorf("result (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

// Exec uses the body CacheMap downloaded, without another request.
func TestExecReusesBody(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs snapshots (root)")
	}
	ctx := context.Background()
	snaps := snaptest.New(t, snapshot.KindOverlay)
	s := newServer(t)
	c := newCache(t)
	s.set("/f", file{body: []byte("once")})
	o := newOp(t, graph.HTTPSource{URL: s.URL + "/f"}, snaps, c)
	if _, err := o.CacheMap(ctx); err != nil {
		t.Fatal(err)
	}
	s.set("/f", file{body: []byte("changed later")})
	ref, err := o.Exec(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readResult(t, ref); got.Data != "once" || s.count("/f") != 1 {
		t.Errorf("Exec wrote %q after %d requests; want the body CacheMap saw, 1 request", got.Data, s.count("/f"))
	}

	// If the cache lost the body, Exec downloads it again and refuses
	// content that no longer matches the key.
	o = newOp(t, graph.HTTPSource{URL: s.URL + "/f"}, snaps, c)
	if _, err := o.CacheMap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(c.blobPath(digest.FromString("changed later"))); err != nil {
		t.Fatal(err)
	}
	s.set("/f", file{body: []byte("third")})
	_, err = o.Exec(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "content changed during the build") || !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Exec after the content changed: %v", err)
	}
}

func TestExecChecksumMismatch(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs snapshots (root)")
	}
	ctx := context.Background()
	snaps := snaptest.New(t, snapshot.KindOverlay)
	s := newServer(t)
	c := newCache(t)
	s.set("/f", file{body: []byte("evil")})
	want := digest.FromString("good")
	o := newOp(t, graph.HTTPSource{URL: s.URL + "/f", Checksum: want}, snaps, c)
	_, err := o.Exec(ctx, nil)
	wantMsg := "ADD " + s.URL + "/f: checksum mismatch: expected " + want.String() + ", got " + digest.FromString("evil").String()
	if err == nil || err.Error() != wantMsg {
		t.Errorf("Exec = %v\nwant %s", err, wantMsg)
	}
	if _, err := o.Exec(ctx, make([]ops.Ref, 1)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Exec with an input: %v", err)
	}
}
