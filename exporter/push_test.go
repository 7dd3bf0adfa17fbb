package exporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/registry"
)

func newResolver(t testing.TB, hosts map[string]registry.HostConfig) *registry.Resolver {
	t.Helper()
	r, err := registry.New(hosts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) pushDeps(r *registry.Resolver) Deps {
	d := f.deps()
	d.Resolver = r
	return d
}

func TestPushInProcessRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host := testutil.StartRegistry(t)
	f := newFixture(t, "docker.io/library/busybox")
	deps := f.pushDeps(newResolver(t, nil))
	single, _ := f.result3(t)
	multi := f.multiResult(t)
	tests := []struct {
		name   string
		res    Result
		attrs  map[string]string
		pullBy string // the reference to pull back; %s is the digest
		index  bool
	}{
		{"tag", single, map[string]string{"name": host + "/app:1"}, host + "/app:1", false},
		{"zstd by digest", single, map[string]string{"name": host + "/app:2", "push-by-digest": "true", "compression": "zstd"}, host + "/app@%s", false},
		{"multi-platform", multi, map[string]string{"name": host + "/multi:1,"}, host + "/multi:1", true},
		{"docker media types", single, map[string]string{"name": host + "/docker:1", "oci-mediatypes": "false"}, host + "/docker:1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parse(TypeRegistry, tc.attrs, deps)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := e.Export(ctx, tc.res)
			if err != nil {
				t.Fatal(err)
			}
			ref := tc.pullBy
			if strings.Contains(ref, "%s") {
				ref = fmt.Sprintf(ref, resp[KeyDigest])
			}
			r, err := name.ParseReference(ref)
			if err != nil {
				t.Fatal(err)
			}
			desc, err := remote.Get(r)
			if err != nil {
				t.Fatalf("pull %s: %v", ref, err)
			}
			if desc.Digest.String() != resp[KeyDigest] {
				t.Errorf("registry has %s, exported %s", desc.Digest, resp[KeyDigest])
			}
			if tc.index {
				idx, err := desc.ImageIndex()
				if err != nil {
					t.Fatal(err)
				}
				validateIndex(t, idx)
			} else {
				img, err := desc.Image()
				if err != nil {
					t.Fatal(err)
				}
				validateImage(t, img)
			}
			if tc.attrs["push-by-digest"] == "true" {
				tag, err := name.ParseReference(tc.attrs["name"])
				if err != nil {
					t.Fatal(err)
				}
				if _, err := remote.Head(tag); err == nil {
					t.Errorf("push-by-digest pushed the tag %s too", tc.attrs["name"])
				}
			}
		})
	}
}

// requestLog is a reverse proxy in front of a registry that records the
// requests it passes.
type requestLog struct {
	mu   sync.Mutex
	reqs []string // "METHOD path?query -> status"
}

func (l *requestLog) proxy(t testing.TB, upstream string) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		l.mu.Lock()
		l.reqs = append(l.reqs, fmt.Sprintf("%s %s -> %d", resp.Request.Method, resp.Request.URL.RequestURI(), resp.StatusCode))
		l.mu.Unlock()
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func (l *requestLog) matching(substrs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.reqs {
		ok := true
		for _, s := range substrs {
			ok = ok && strings.Contains(r, s)
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

func TestPushDistributionMountsBaseLayers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := testutil.StartDistribution(t, testutil.DistributionOptions{})
	var log requestLog
	host := log.proxy(t, d.URL)
	f := newFixture(t, host+"/base/busybox")
	testutil.PushImage(t, host+"/base/busybox:1", f.base)
	res, _ := f.result3(t)
	res.Created = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) // both pushes make the same config

	e, err := parse(TypeImage, map[string]string{"name": host + "/team/app:1", "push": "true"}, f.pushDeps(newResolver(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.Export(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	base := f.baseLayer.Digest.String()
	if got := log.matching("POST /v2/team/app/blobs/uploads/", "mount="+strings.ReplaceAll(base, ":", "%3A"), "from=base%2Fbusybox", "-> 201"); len(got) != 1 {
		t.Errorf("base layer mount requests: %v\nall: %v", got, log.reqs)
	}
	if got := log.matching("PUT /v2/team/app/blobs/", strings.ReplaceAll(base, ":", "%3A")); len(got) != 0 {
		t.Errorf("the base layer was uploaded: %v", got)
	}
	if got := log.matching("PUT /v2/team/app/blobs/"); len(got) != 3 {
		t.Errorf("uploads %v, want 3 (two new layers, the config)", got)
	}

	// Pulled back from the registry itself by digest, the image is whole.
	ref, err := name.ParseReference(d.Ref("team/app@" + resp[KeyDigest]))
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	validateImage(t, img)

	// A second push of the same image uploads nothing.
	before := len(log.matching("PUT /v2/team/app/blobs/"))
	e, _ = parse(TypeImage, map[string]string{"name": host + "/team/app:2", "push": "true"}, f.pushDeps(newResolver(t, nil)))
	if _, err := e.Export(ctx, res); err != nil {
		t.Fatal(err)
	}
	if after := len(log.matching("PUT /v2/team/app/blobs/")); after != before {
		t.Errorf("second push uploaded %d blobs, want none", after-before)
	}
}

func TestPushTLSInsecure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := testutil.StartDistribution(t, testutil.DistributionOptions{TLS: true})
	f := newFixture(t, "docker.io/library/busybox")
	res, _ := f.result3(t)
	deps := f.pushDeps(newResolver(t, nil))
	target := d.Host + "/app:1"

	e, err := parse(TypeImage, map[string]string{"name": target, "push": "true", "store": "false"}, deps)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Export(ctx, res)
	if err == nil || !strings.Contains(err.Error(), "unknown authority") || !strings.Contains(err.Error(), d.Host) {
		t.Fatalf("push to an untrusted TLS registry: %v, want an unknown-authority error naming %s", err, d.Host)
	}
	t.Logf("push error: %v", err)

	e, err = parse(TypeImage, map[string]string{"name": target, "push": "true", "registry.insecure": "true"}, deps)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.Export(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(target)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithTransport(d.Transport()))
	if err != nil {
		t.Fatal(err)
	}
	dig, _ := img.Digest()
	if dig.String() != resp[KeyDigest] {
		t.Errorf("registry has %s, exported %s", dig, resp[KeyDigest])
	}
}

func TestPushUnreachableRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()

	f := newFixture(t, "docker.io/library/busybox")
	res, _ := f.result3(t)
	e, err := parse(TypeImage, map[string]string{"name": host + "/app:1", "push": "true"}, f.pushDeps(newResolver(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Export(ctx, res)
	if err == nil || !strings.Contains(err.Error(), host) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("push error %v, want an unavailable error naming %s", err, host)
	}
	t.Logf("push error: %v", err)
	var re *registry.Error
	if !errors.As(err, &re) || re.Registry != host {
		t.Errorf("error %v is not a registry.Error for %s", err, host)
	}
	// The image was stored before the push failed.
	if _, err := f.images.Get(ctx, host+"/app:1"); err != nil {
		t.Errorf("the local image is gone after a failed push: %v", err)
	}
}

func TestPushStatusNamed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A registry that refuses every write.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"errors":[{"code":"DENIED","message":"read-only"}]}`))
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	f := newFixture(t, "docker.io/library/busybox")
	res, _ := f.result3(t)
	e, err := parse(TypeRegistry, map[string]string{"name": host + "/app:1"}, f.pushDeps(newResolver(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Export(ctx, res)
	var te *transport.Error
	if err == nil || !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "403") || !errors.As(err, &te) {
		t.Fatalf("push error %v, want one naming %s and 403", err, host)
	}
	t.Logf("push error: %v", err)
	if !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Errorf("push error %v is not in the permission-denied class", err)
	}
}
