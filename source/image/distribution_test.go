package image

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testutil"
)

// TestDistribution pulls from the real registry server (Debian's
// docker-registry) with basic auth: by tag and by digest, per platform,
// and again with the server stopped.
func TestDistribution(t *testing.T) {
	t.Parallel()
	d := testutil.StartDistribution(t, testutil.DistributionOptions{Users: map[string]string{"alice": "pw"}})
	idx := testutil.BusyboxIndex(t)
	byArch := platformImages(t, idx)
	iref := testutil.PushIndex(t, d.Ref("busybox:1"), idx, d.RemoteOptions()...)
	e := newEnv(t, nil)

	_, err := e.p.ResolveImageConfig(t.Context(), d.Ref("busybox:1"), amd64)
	if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "registry "+d.Host+" answered 401") {
		t.Fatalf("without credentials: %v", err)
	}
	bp := e.p.WithCredentials(func(_ context.Context, host string) (authn.AuthConfig, bool, error) {
		if host != d.Host {
			return authn.AuthConfig{}, false, nil
		}
		return authn.AuthConfig{Username: "alice", Password: "pw"}, true, nil
	})
	for _, tt := range []struct {
		ref  string
		arch string
	}{
		{d.Ref("busybox:1"), "amd64"},
		{d.Ref("busybox:1"), "arm64"},
		{iref.String(), "arm64"},
	} {
		pl := amd64
		if tt.arch == "arm64" {
			pl = arm64
		}
		res, err := bp.ResolveImageConfig(t.Context(), tt.ref, pl)
		if err != nil {
			t.Fatalf("resolve %s for %s: %v", tt.ref, tt.arch, err)
		}
		if want := imageDigest(t, byArch[tt.arch]); res.Digest != want {
			t.Errorf("resolve %s for %s = %s, want %s", tt.ref, tt.arch, res.Digest, want)
		}
	}
	if _, err := bp.ResolveImageConfig(t.Context(), d.Ref("busybox:2"), amd64); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), d.Host) {
		t.Errorf("missing tag: %v", err)
	}

	needRoot(t)
	got, err := bp.Pull(t.Context(), d.Ref("busybox:1"), amd64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readFile(t, e, got.ChainID, "bin/busybox"); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	fresh := newEnvWith(t, t.TempDir(), e.cs, nil)
	again, err := fresh.p.Pull(t.Context(), got.Ref, amd64)
	if err != nil {
		t.Fatalf("pinned pull with the registry stopped: %v", err)
	}
	if again.ChainID != got.ChainID {
		t.Errorf("offline pull chain %s, want %s", again.ChainID, got.ChainID)
	}
}

// TestPullMissingBlob: a registry that lost a layer answers 404, and the
// error names the registry and the layer.
func TestPullMissingBlob(t *testing.T) {
	needRoot(t)
	t.Parallel()
	s := startServer(t)
	img := testutil.BusyboxImage(t, testutil.HostPlatform())
	s.push(t, "busybox:1", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodDelete, s.srv.URL+"/v2/busybox/blobs/"+ld.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("delete blob: %s", resp.Status)
	}
	e := newEnv(t, nil)
	_, err = e.p.Pull(t.Context(), s.host+"/busybox:1", amd64)
	t.Log(err)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "registry "+s.host) || !strings.Contains(err.Error(), "layer 1/1 ("+ld.String()+")") {
		t.Errorf("err = %v, want not found naming the registry and the layer", err)
	}
}
