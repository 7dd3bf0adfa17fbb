package testutil

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/core/errdefs"
)

// StartRegistry starts go-containerregistry's in-process registry on
// 127.0.0.1 (plain HTTP, in memory, no auth) and returns its host:port. It
// stops when the test ends.
func StartRegistry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// StartDistribution starts the real distribution server (Debian's
// docker-registry) with opts, see NewDistribution, and stops it when the
// test ends. The test is skipped when the binary (or htpasswd, with Users) is
// missing, and skipped under -short.
func StartDistribution(t testing.TB, opts DistributionOptions) *Distribution {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: starts docker-registry (not under -short)")
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	d, err := NewDistribution(context.Background(), opts)
	if errors.Is(err, errdefs.ErrNotFound) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// PushImage pushes img to ref (e.g. host+"/app:1"), failing the test on
// error. opts reach the registry, e.g. Distribution.RemoteOptions().
func PushImage(t testing.TB, ref string, img v1.Image, opts ...remote.Option) name.Digest {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return r.Context().Digest(d.String())
}

// PushIndex pushes idx and every image in it to ref, failing the test on
// error.
func PushIndex(t testing.TB, ref string, idx v1.ImageIndex, opts ...remote.Option) name.Digest {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	if err := remote.WriteIndex(r, idx, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return r.Context().Digest(d.String())
}
