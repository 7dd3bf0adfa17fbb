package image

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/registry"
	"github.com/kiln-build/kiln/snapshot"
)

// env is a daemon's storage for one test: content store, snapshotter,
// image store and a puller over them.
type env struct {
	root   string
	cs     content.Store
	sn     *snapshot.Snapshotter
	images *imagestore.Store
	p      *Puller
}

// newEnv returns fresh storage with a resolver for hosts. Without root the
// snapshotter is native and cannot unpack (use needRoot for pulls).
func newEnv(t *testing.T, hosts map[string]registry.HostConfig) *env {
	t.Helper()
	root := t.TempDir()
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	return newEnvWith(t, root, cs, hosts)
}

// newEnvWith is newEnv sharing a content store (a second daemon root's
// snapshots over the same blobs).
func newEnvWith(t *testing.T, root string, cs content.Store, hosts map[string]registry.HostConfig) *env {
	t.Helper()
	kind := snapshot.KindAuto
	if os.Geteuid() != 0 {
		kind = snapshot.KindNative
	}
	sn, err := snapshot.New(root, kind)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	db, err := bolt.Open(filepath.Join(root, "metadata.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	images, err := imagestore.New(db, cs)
	if err != nil {
		t.Fatal(err)
	}
	r, err := registry.New(hosts)
	if err != nil {
		t.Fatal(err)
	}
	return &env{root: root, cs: cs, sn: sn, images: images, p: NewPuller(r, cs, sn, images)}
}

func needRoot(t *testing.T) {
	t.Helper()
	testroot.Require(t, "unpacking layers mounts overlay snapshots and sets file owners")
}

// server is the in-process registry behind a handler that counts requests
// and can demand basic auth or be shut down.
type server struct {
	host string
	srv  *httptest.Server
	user string
	pass string

	mu   sync.Mutex
	gets map[string]int // "GET /v2/<repo>/blobs/<digest>" → count
}

func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{gets: map[string]int{}}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.mu.Lock()
		s.gets[req.Method+" "+req.URL.Path]++
		user, pass := s.user, s.pass
		s.mu.Unlock()
		if user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(s.srv.Close)
	s.host = strings.TrimPrefix(s.srv.URL, "http://")
	return s
}

// requireAuth makes the server demand user/pass from now on.
func (s *server) requireAuth(user, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, pass
}

// blobGets returns how many GETs of blob d the server answered, over all
// repositories.
func (s *server) blobGets(d v1.Hash) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.gets {
		if strings.HasPrefix(k, "GET ") && strings.HasSuffix(k, "/blobs/"+d.String()) {
			n += c
		}
	}
	return n
}

// resetCounts forgets the requests seen so far.
func (s *server) resetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets = map[string]int{}
}

// push writes img to repoTag ("app:1") and returns the digest reference.
func (s *server) push(t *testing.T, repoTag string, img v1.Image) name.Digest {
	t.Helper()
	ref, err := name.ParseReference(s.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Digest(d.String())
}

func (s *server) pushIndex(t *testing.T, repoTag string, idx v1.ImageIndex) name.Digest {
	t.Helper()
	ref, err := name.ParseReference(s.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Digest(d.String())
}

// memLayer is a layer held in memory with any media type.
type memLayer struct {
	compressed, uncompressed []byte
	mt                       types.MediaType
}

func (l *memLayer) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.compressed))
	return h, err
}
func (l *memLayer) DiffID() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.uncompressed))
	return h, err
}
func (l *memLayer) Size() (int64, error)                { return int64(len(l.compressed)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.uncompressed)), nil
}

var _ v1.Layer = (*memLayer)(nil)
