package image

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testutil"
)

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

// platformImages returns the digest and config of each image of idx by
// architecture.
func platformImages(t *testing.T, idx v1.ImageIndex) map[string]v1.Image {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Image{}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		out[d.Platform.Architecture] = img
	}
	return out
}

func rawConfig(t *testing.T, img v1.Image) []byte {
	t.Helper()
	b, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func imageDigest(t *testing.T, img v1.Image) digest.Digest {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(d.String())
}

func TestResolveImageConfig(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	idx := testutil.BusyboxIndex(t)
	byArch := platformImages(t, idx)
	single := byArch["amd64"]
	s.push(t, "busybox:1", single)
	iref := s.pushIndex(t, "multi:latest", idx)
	e := newEnv(t, nil)

	sd := imageDigest(t, single)
	ad, armd := imageDigest(t, byArch["amd64"]), imageDigest(t, byArch["arm64"])
	tests := []struct {
		name     string
		ref      string
		platform ocispec.Platform
		wantRef  string
		want     v1.Image
	}{
		{"tag", s.host + "/busybox:1", amd64, s.host + "/busybox:1@" + sd.String(), single},
		{"default tag and platform", s.host + "/busybox:1", ocispec.Platform{}, s.host + "/busybox:1@" + sd.String(), single},
		{"digest", s.host + "/busybox@" + sd.String(), amd64, s.host + "/busybox@" + sd.String(), single},
		{"tag and digest", s.host + "/busybox:1@" + sd.String(), amd64, s.host + "/busybox:1@" + sd.String(), single},
		{"index amd64", s.host + "/multi", amd64, s.host + "/multi:latest@" + ad.String(), byArch["amd64"]},
		{"index arm64", s.host + "/multi:latest", arm64, s.host + "/multi:latest@" + armd.String(), byArch["arm64"]},
		{"index arm64/v8", s.host + "/multi:latest", ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, s.host + "/multi:latest@" + armd.String(), byArch["arm64"]},
		{"index by digest", iref.String(), arm64, s.host + "/multi@" + armd.String(), byArch["arm64"]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.p.ResolveImageConfig(t.Context(), tt.ref, tt.platform)
			if err != nil {
				t.Fatal(err)
			}
			if got.Ref != tt.wantRef {
				t.Errorf("Ref = %s, want %s", got.Ref, tt.wantRef)
			}
			if want := imageDigest(t, tt.want); got.Digest != want {
				t.Errorf("Digest = %s, want %s", got.Digest, want)
			}
			if diff := cmp.Diff(string(rawConfig(t, tt.want)), string(got.Config)); diff != "" {
				t.Errorf("Config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	idx := testutil.BusyboxIndex(t)
	s.pushIndex(t, "multi:1", idx)
	single := testutil.BusyboxImage(t, testutil.HostPlatform())
	s.push(t, "single:1", single)
	e := newEnv(t, nil)
	down := startServer(t)
	down.srv.Close()

	tests := []struct {
		name     string
		ref      string
		platform ocispec.Platform
		class    error
		msg      []string
	}{
		{"wrong platform", s.host + "/multi:1", ocispec.Platform{OS: "linux", Architecture: "riscv64"}, errdefs.ErrNotFound,
			[]string{"pull " + s.host + "/multi:1: no linux/riscv64 image in the index (it has linux/amd64, linux/arm64)"}},
		{"single image of another platform", s.host + "/single:1", ocispec.Platform{OS: "linux", Architecture: "s390x"}, errdefs.ErrNotFound,
			[]string{"the image is linux/amd64, not linux/s390x"}},
		{"missing tag", s.host + "/multi:nope", amd64, errdefs.ErrNotFound, []string{s.host, "multi:nope"}},
		{"missing repository", s.host + "/nothere:1", amd64, errdefs.ErrNotFound, []string{s.host, "nothere"}},
		{"missing digest", s.host + "/multi@" + digest.FromString("x").String(), amd64, errdefs.ErrNotFound, []string{s.host, "manifest unknown"}},
		{"registry down", down.host + "/app:1", amd64, errdefs.ErrUnavailable, []string{"cannot reach registry " + down.host}},
		{"bad reference", "Not A Ref", amd64, errdefs.ErrInvalidArgument, []string{`invalid image reference "Not A Ref"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.p.ResolveImageConfig(t.Context(), tt.ref, tt.platform)
			t.Log(err)
			if !errors.Is(err, tt.class) {
				t.Fatalf("err = %v, want class %v", err, tt.class)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err = %q, want it to contain %q", err, m)
				}
			}
		})
	}
}

func TestResolveCredentials(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.push(t, "private:1", testutil.BusyboxImage(t, testutil.HostPlatform()))
	s.requireAuth("alice", "s3cret")
	e := newEnv(t, nil)
	ref := s.host + "/private:1"

	_, err := e.p.ResolveImageConfig(t.Context(), ref, amd64)
	if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "registry "+s.host+" answered 401") {
		t.Fatalf("without credentials: %v, want a 401 naming %s", err, s.host)
	}

	var calls atomic.Int32
	var hosts []string
	creds := func(_ context.Context, host string) (authn.AuthConfig, bool, error) {
		calls.Add(1)
		hosts = append(hosts, host)
		return authn.AuthConfig{Username: "alice", Password: "s3cret"}, true, nil
	}
	bp := e.p.WithCredentials(creds)
	for range 3 {
		if _, err := bp.ResolveImageConfig(t.Context(), ref, amd64); err != nil {
			t.Fatalf("with the client's credentials: %v", err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("credential func called %d times (hosts %v), want once per host", n, hosts)
	}

	wrong := e.p.WithCredentials(func(context.Context, string) (authn.AuthConfig, bool, error) {
		return authn.AuthConfig{Username: "alice", Password: "wrong"}, true, nil
	})
	_, err = wrong.ResolveImageConfig(t.Context(), ref, amd64)
	if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "client's credentials") {
		t.Errorf("wrong password: %v", err)
	}

	failing := e.p.WithCredentials(func(context.Context, string) (authn.AuthConfig, bool, error) {
		return authn.AuthConfig{}, false, errdefs.WithClass(errdefs.ErrUnavailable, errors.New("client gone"))
	})
	if _, err := failing.ResolveImageConfig(t.Context(), ref, amd64); err == nil || !strings.Contains(err.Error(), "client gone") {
		t.Errorf("failing credential func: %v", err)
	}
}

func TestResolveLocalImageFirst(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	idx := testutil.BusyboxIndex(t)
	byArch := platformImages(t, idx)
	s.pushIndex(t, "app:1", idx)
	// No registry is configured: docker.io is unreachable from tests, so
	// resolving my-hello-app works only if the local store answers.
	e := newEnv(t, nil)
	local := byArch["amd64"]
	if _, err := e.p.Import(t.Context(), "my-hello-app", local); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.ImportIndex(t.Context(), "my-multi:2", idx); err != nil {
		t.Fatal(err)
	}
	// The same name as the registry's index, but only amd64 locally.
	if _, err := e.p.Import(t.Context(), s.host+"/app:1", local); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		ref      string
		platform ocispec.Platform
		wantRef  string
		want     v1.Image
	}{
		{"my-hello-app", amd64, "docker.io/library/my-hello-app:latest@" + imageDigest(t, local).String(), local},
		{"docker.io/library/my-hello-app:latest", amd64, "docker.io/library/my-hello-app:latest@" + imageDigest(t, local).String(), local},
		{"my-multi:2", arm64, "docker.io/library/my-multi:2@" + imageDigest(t, byArch["arm64"]).String(), byArch["arm64"]},
		// The local image has no arm64: the registry's index has.
		{s.host + "/app:1", arm64, s.host + "/app:1@" + imageDigest(t, byArch["arm64"]).String(), byArch["arm64"]},
	}
	s.resetCounts()
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := e.p.ResolveImageConfig(t.Context(), tt.ref, tt.platform)
			if err != nil {
				t.Fatal(err)
			}
			if got.Ref != tt.wantRef {
				t.Errorf("Ref = %s, want %s", got.Ref, tt.wantRef)
			}
			if string(got.Config) != string(rawConfig(t, tt.want)) {
				t.Errorf("Config = %s, want the image's", got.Config)
			}
		})
	}

	// --pull: the registry's image, though the store has another of that
	// name.
	s.pushIndex(t, "pulled:1", idx)
	other, err := mutate.ConfigFile(local, &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{Env: []string{"LOCAL=1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Import(t.Context(), s.host+"/pulled:1", other); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    *Puller
		want v1.Image
	}{{e.p, other}, {e.p.Pulling(), byArch["amd64"]}, {e.p.Pulling().WithCredentials(nil), byArch["amd64"]}} {
		got, err := tc.p.ResolveImageConfig(t.Context(), s.host+"/pulled:1", amd64)
		if err != nil {
			t.Fatal(err)
		}
		if got.Digest != imageDigest(t, tc.want) {
			t.Errorf("pull=%v resolved %s, want %s", tc.p.pull, got.Digest, imageDigest(t, tc.want))
		}
	}

	// A local image whose blobs went missing falls back to the registry,
	// and the error says so.
	emptyImg, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.p.Import(t.Context(), s.host+"/gone:1", emptyImg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cs.Delete(t.Context(), stored.Target.Digest); err != nil {
		t.Fatal(err)
	}
	_, err = e.p.ResolveImageConfig(t.Context(), s.host+"/gone:1", amd64)
	t.Log(err)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "the local image "+s.host+"/gone:1 was no use") {
		t.Errorf("missing local blobs: %v", err)
	}
}

func TestParseTarget(t *testing.T) {
	t.Parallel()
	d := digest.FromString("x")
	tests := []struct {
		in, out, pinned string
	}{
		{"busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest@" + d.String()},
		{"busybox@" + d.String(), "docker.io/library/busybox@" + d.String(), "docker.io/library/busybox@" + d.String()},
		{"busybox:1.36@" + d.String(), "docker.io/library/busybox:1.36@" + d.String(), "docker.io/library/busybox:1.36@" + d.String()},
		{"localhost:5000/a/b", "localhost:5000/a/b:latest", "localhost:5000/a/b:latest@" + d.String()},
		{"localhost:5000/a/b@" + d.String(), "localhost:5000/a/b@" + d.String(), "localhost:5000/a/b@" + d.String()},
		{"index.docker.io/user/app:v2", "docker.io/user/app:v2", "docker.io/user/app:v2@" + d.String()},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			tg, err := parseTarget(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := tg.String(); got != tt.out {
				t.Errorf("String() = %s, want %s", got, tt.out)
			}
			if got := tg.pinned(d); got != tt.pinned {
				t.Errorf("pinned = %s, want %s", got, tt.pinned)
			}
		})
	}
}
