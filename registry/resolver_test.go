package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/core/errdefs"
)

// fastRetry keeps tests that hit failing origins quick.
var fastRetry = WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 2})

// testServer is an in-process registry that can demand basic auth and
// remembers the Authorization headers and paths it saw.
type testServer struct {
	host string
	user string
	pass string

	mu    sync.Mutex
	auths []string
	paths []string
}

func startServer(t *testing.T, user, pass string) *testServer {
	t.Helper()
	s := &testServer{user: user, pass: pass}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.mu.Lock()
		s.auths = append(s.auths, req.Header.Get("Authorization"))
		s.paths = append(s.paths, req.Method+" "+req.URL.Path)
		s.mu.Unlock()
		if s.user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != s.user || p != s.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	s.host = strings.TrimPrefix(srv.URL, "http://")
	return s
}

// sawPath reports whether the server got a request whose path contains p.
func (s *testServer) sawPath(p string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.paths {
		if strings.Contains(q, p) {
			return true
		}
	}
	return false
}

func (s *testServer) lastAuth() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.auths) - 1; i >= 0; i-- {
		if s.auths[i] != "" {
			return s.auths[i]
		}
	}
	return ""
}

// push writes img to s under repo:tag with the right credentials.
func (s *testServer) push(t *testing.T, repoTag string, img v1.Image) name.Digest {
	t.Helper()
	r, err := New(map[string]HostConfig{s.host: {Username: s.user, Password: s.pass}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(s.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Write(context.Background(), ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	d, _ := img.Digest()
	return ref.Context().Digest(d.String())
}

// closedHost returns a 127.0.0.1 address nothing listens on.
func closedHost(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// logBuffer collects log records for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestParseReference(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"busybox", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36"},
		{"user/app", "docker.io/user/app:latest"},
		{"docker.io/library/busybox", "docker.io/library/busybox:latest"},
		{"index.docker.io/library/busybox:1", "docker.io/library/busybox:1"},
		{"127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1"},
		{"ghcr.io/org/app@sha256:" + strings.Repeat("a", 64), "ghcr.io/org/app@sha256:" + strings.Repeat("a", 64)},
	}
	for _, tc := range tests {
		ref, err := ParseReference(tc.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tc.in, err)
			continue
		}
		if got := NormalizedName(ref); got != tc.want {
			t.Errorf("ParseReference(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for bad, why := range map[string]string{
		"Bad:Tag:x":                "repository can only contain the characters",
		"Busybox":                  "repository names must be lowercase (busybox)",
		"reg:5000/My/App:V1":       "repository names must be lowercase (reg:5000/my/app:V1)",
		"app:bad tag":              "tag can only contain the characters",
		"app:":                     "must specify a tag name after the colon",
		"host:5000/app@sha256:123": "invalid checksum digest length",
		"host:5000/app@sha256:" + strings.Repeat("a", 64) + "@x": "exactly one '@'",
	} {
		_, err := ParseReference(bad)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseReference(%q) = %v, want an error saying %q", bad, err, why)
		}
	}
	for _, bad := range []string{"", "Busybox", "app:bad tag", "host:5000/app@sha256:123"} {
		_, err := ParseReference(bad)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseReference(%q): err = %v, want invalid argument", bad, err)
			continue
		}
		if bad != "" && !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("ParseReference(%q): error does not quote the input: %v", bad, err)
		}
	}
}

func TestHostKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"docker.io":                   "docker.io",
		"index.docker.io":             "docker.io",
		"registry-1.docker.io":        "docker.io",
		"https://index.docker.io/v1/": "docker.io",
		"Registry.Example.com:5000":   "registry.example.com:5000",
		"http://127.0.0.1:5000":       "127.0.0.1:5000",
		"ghcr.io":                     "ghcr.io",
	} {
		if got := HostKey(in); got != want {
			t.Errorf("HostKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	badJSON := filepath.Join(dir, "config.json")
	wrongType := filepath.Join(dir, "wrongtype.json")
	for p, content := range map[string]string{
		notPEM:    "hello",
		badJSON:   "{\n  \"auths\": {\n    \"h\": {,}\n  }\n}\n",
		wrongType: "{\n  \"auths\": []\n}\n",
	} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		hosts map[string]HostConfig
		want  string
	}{
		{"bad host", map[string]HostConfig{"not a host": {}}, `registry host "not a host": not a host[:port]`},
		{"duplicate hub", map[string]HostConfig{"docker.io": {}, "index.docker.io": {}}, `configured twice`},
		{"bad mirror", map[string]HostConfig{"docker.io": {Mirrors: []string{"ftp://m"}}}, `mirror "ftp://m": scheme "ftp"`},
		{"bad mirror prefix", map[string]HostConfig{"docker.io": {Mirrors: []string{"m:5000/Bad Prefix"}}}, `is not a repository prefix`},
		{"missing ca", map[string]HostConfig{"h:5000": {CAFiles: []string{filepath.Join(dir, "nope.pem")}}}, `registry host h:5000: ca: open`},
		{"ca not pem", map[string]HostConfig{"h:5000": {CAFiles: []string{notPEM}}}, `no PEM certificate`},
		{"missing keypair", map[string]HostConfig{"h:5000": {KeyPairs: []KeyPair{{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"}}}}, `keypair /nonexistent/c.pem`},
		{"missing config-file", map[string]HostConfig{"h:5000": {ConfigFile: filepath.Join(dir, "nope.json")}}, `config-file: open`},
		{"config-file syntax", map[string]HostConfig{"h:5000": {ConfigFile: badJSON}}, badJSON + `:3: invalid JSON`},
		{"config-file type", map[string]HostConfig{"h:5000": {ConfigFile: wrongType}}, wrongType + `:2: auths has the wrong type`},
		{"password alone", map[string]HostConfig{"h:5000": {Password: "x"}}, `password without username`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.hosts)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want invalid argument", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestPullInProcess(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "")
	img := randomImage(t)
	dig := s.push(t, "app:1", img)
	amd, arm := randomImage(t), randomImage(t)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	idxRef := mustRef(t, s.host+"/multi:1")
	if err := r.WriteIndex(ctx, idxRef, idx); err != nil {
		t.Fatal(err)
	}
	ref := mustRef(t, s.host+"/app:1")

	desc, err := r.Head(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != dig.DigestStr() {
		t.Errorf("Head digest = %s, want %s", desc.Digest, dig.DigestStr())
	}
	got, err := r.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest.String() != dig.DigestStr() {
		t.Errorf("Get digest = %s", got.Digest)
	}
	pulled, err := r.Image(ctx, dig, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := pulled.Digest(); d.String() != dig.DigestStr() {
		t.Errorf("Image digest = %s", d)
	}
	armImg, err := r.Image(ctx, idxRef, v1.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := arm.Digest()
	if d, _ := armImg.Digest(); d != want {
		t.Errorf("Image(index, arm64) = %s, want %s", d, want)
	}
	gotIdx, err := r.Index(ctx, idxRef)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := gotIdx.IndexManifest(); len(m.Manifests) != 2 {
		t.Errorf("index has %d manifests", len(m.Manifests))
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	l, err := r.Layer(ctx, ref.Context().Digest(ld.String()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := v1.SHA256(rc)
	rc.Close()
	if err != nil || h != ld {
		t.Errorf("layer content hash = %s, %v; want %s", h, err, ld)
	}
}

func TestPullNotFoundAndUnreachable(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "")
	s.push(t, "app:1", randomImage(t))
	down := closedHost(t)
	r, err := New(nil, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	missingBlob := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		name   string
		do     func(ctx context.Context) error
		class  error
		want   string
		status int
	}{
		{
			name: "missing tag", class: errdefs.ErrNotFound, status: 404,
			do:   func(ctx context.Context) error { _, err := r.Get(ctx, mustRef(t, s.host+"/app:2")); return err },
			want: "pull " + s.host + "/app:2: registry " + s.host + ": manifest unknown (404 Not Found)",
		},
		{
			name: "missing repository head", class: errdefs.ErrNotFound, status: 404,
			do:   func(ctx context.Context) error { _, err := r.Head(ctx, mustRef(t, s.host+"/nope:1")); return err },
			want: "pull " + s.host + "/nope:1: registry " + s.host + ": manifest unknown (404 Not Found)",
		},
		{
			name: "missing blob", class: errdefs.ErrNotFound, status: 404,
			do: func(ctx context.Context) error {
				_, err := r.Layer(ctx, mustRef(t, s.host+"/app@"+missingBlob).(name.Digest))
				return err
			},
			want: "pull " + s.host + "/app@" + missingBlob + ": registry " + s.host + ": blob unknown (404 Not Found)",
		},
		{
			name: "unreachable", class: errdefs.ErrUnavailable,
			do:   func(ctx context.Context) error { _, err := r.Get(ctx, mustRef(t, down+"/app:1")); return err },
			want: "pull " + down + "/app:1: cannot reach registry " + down + ": connection refused",
		},
		{
			name: "unreachable push", class: errdefs.ErrUnavailable,
			do:   func(ctx context.Context) error { return r.Write(ctx, mustRef(t, down+"/app:1"), randomImage(t)) },
			want: "push " + down + "/app:1: cannot reach registry " + down + ": connection refused",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.do(context.Background())
			if !errors.Is(err, tc.class) {
				t.Fatalf("err = %v, want class %v", err, tc.class)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			var re *Error
			if !errors.As(err, &re) || re.StatusCode != tc.status {
				t.Errorf("status = %+v, want %d", re, tc.status)
			}
		})
	}
}

func TestPullCanceled(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "")
	r, err := New(map[string]HostConfig{s.host: {Mirrors: []string{closedHost(t)}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.Get(ctx, mustRef(t, s.host+"/app:1"))
	if !errors.Is(err, errdefs.ErrCanceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
	if s.sawPath("/v2/") {
		t.Errorf("the origin was asked after cancellation")
	}
}

func TestMirrors(t *testing.T) {
	t.Parallel()
	origin := startServer(t, "", "")
	empty := startServer(t, "", "")
	full := startServer(t, "", "")
	img := randomImage(t)
	dig := origin.push(t, "library/app:1", img)
	full.push(t, "prefix/library/app:1", img)
	down := closedHost(t)

	tests := []struct {
		name       string
		mirrors    []string
		wantFrom   string
		wantLogged []string
	}{
		{"down then missing then origin", []string{down, empty.host}, origin.host, []string{down, empty.host}},
		{"mirror with prefix answers", []string{down, "http://" + full.host + "/prefix"}, full.host, []string{down}},
		{"no mirrors", nil, origin.host, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs logBuffer
			r, err := New(map[string]HostConfig{origin.host: {Mirrors: tc.mirrors}}, WithLogger(logs.logger()))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for _, ref := range []name.Reference{mustRef(t, origin.host+"/library/app:1"), dig} {
				desc, err := r.Get(ctx, ref)
				if err != nil {
					t.Fatalf("Get %s: %v", ref, err)
				}
				if got := desc.Source.Context().RegistryStr(); got != tc.wantFrom {
					t.Errorf("Get %s answered by %s, want %s", ref, got, tc.wantFrom)
				}
				if desc.Digest.String() != dig.DigestStr() {
					t.Errorf("digest %s, want %s", desc.Digest, dig.DigestStr())
				}
			}
			l, err := r.Layer(ctx, dig.Context().Digest(mustLayerDigest(t, img)))
			if err != nil {
				t.Fatalf("Layer: %v", err)
			}
			if _, err := l.Compressed(); err != nil {
				t.Fatalf("Layer content: %v", err)
			}
			for _, m := range tc.wantLogged {
				if !strings.Contains(logs.String(), "mirror="+m) {
					t.Errorf("mirror %s failure not logged; log:\n%s", m, logs.String())
				}
			}
		})
	}
}

func mustLayerDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestMirrorFailuresInOriginError(t *testing.T) {
	t.Parallel()
	origin := startServer(t, "", "")
	empty := startServer(t, "", "")
	down := closedHost(t)
	r, err := New(map[string]HostConfig{origin.host: {Mirrors: []string{down, empty.host}}}, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Get(context.Background(), mustRef(t, origin.host+"/app:1"))
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("err = %v, want not found", err)
	}
	want := "pull " + origin.host + "/app:1: registry " + origin.host + ": repository app unknown (404 Not Found)" +
		" (mirrors tried first: cannot reach registry " + down + ": connection refused; registry " + empty.host + ": repository app unknown (404 Not Found))"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
}

func TestPushNeverUsesMirrors(t *testing.T) {
	t.Parallel()
	origin := startServer(t, "", "")
	mirror := startServer(t, "", "")
	r, err := New(map[string]HostConfig{origin.host: {Mirrors: []string{mirror.host}}})
	if err != nil {
		t.Fatal(err)
	}
	ref := mustRef(t, origin.host+"/app:1")
	if err := r.Write(context.Background(), ref, randomImage(t)); err != nil {
		t.Fatal(err)
	}
	if mirror.sawPath("/v2/") {
		t.Errorf("push went to the mirror")
	}
	if !origin.sawPath("/manifests/1") {
		t.Errorf("push did not reach the origin")
	}
	pref, opts, err := r.PushOptions(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if pref.Context().RegistryStr() != origin.host {
		t.Errorf("PushOptions ref = %s", pref)
	}
	if err := remote.Write(pref, randomImage(t), opts...); err != nil {
		t.Fatalf("push with PushOptions: %v", err)
	}
}
