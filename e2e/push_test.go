package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-build/kiln/internal/testutil"
)

// kiln build --push -t REF pushes the image, as docker buildx build --push
// does; --load keeps it in kilnd's image store as well.
func TestBuildPushAndLoad(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN echo pushed > /pushed\n"})
	ref := e.reg.Ref("app/pushed:1")
	if r := e.build(dir, "--push", "--load", "-t", ref); r.err != nil {
		t.Fatalf("build --push: %v\n%s", r.err, r.stderr)
	}
	parsed, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(parsed, append(e.reg.RemoteOptions(), remote.WithContext(context.Background()))...)
	if err != nil {
		t.Fatalf("the pushed image: %v", err)
	}
	if layers, err := img.Layers(); err != nil || len(layers) != 2 {
		t.Errorf("the pushed image has %d layers (%v), want busybox's and the RUN's", len(layers), err)
	}
	images := e.kilnCmd(context.Background(), "images")
	out, err := images.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "app/pushed") {
		t.Errorf("kiln images after --load: %v\n%s", err, out)
	}
	if r := e.build(dir, "--push"); r.err == nil || !strings.Contains(r.stderr, "--push and --load need a name") {
		t.Errorf("--push without -t: %v\n%s", r.err, r.stderr)
	}
}

// kiln build --pull resolves FROM with the registry even when kilnd's image
// store has an image of that name; without it the local image wins.
func TestBuildPull(t *testing.T) {
	e := newBldEnv(t)
	// A local busybox that differs from the registry's: it has /local.
	local, err := mutate.Append(testutil.BusyboxImage(t, testutil.HostPlatform()), mutate.Addendum{Layer: layer(t, map[string][]byte{"local": []byte("local\n")})})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "busybox.tar")
	tag, err := name.NewTag("busybox:latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(file, tag, local); err != nil {
		t.Fatal(err)
	}
	if out, err := e.kilnCmd(context.Background(), "image", "import", file).CombinedOutput(); err != nil {
		t.Fatalf("kiln image import: %v\n%s", err, out)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN (cat /local 2>/dev/null || echo registry) > /from\n"})
	from := func(args ...string) string {
		t.Helper()
		out := t.TempDir()
		if r := e.build(dir, append(args, "-o", "type=local,dest="+out)...); r.err != nil {
			t.Fatalf("build %v: %v\n%s", args, r.err, r.stderr)
		}
		b, err := os.ReadFile(filepath.Join(out, "from"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := from(); got != "local\n" {
		t.Errorf("without --pull FROM busybox came from %q, want the local image", got)
	}
	if got := from("--pull"); got != "registry\n" {
		t.Errorf("with --pull FROM busybox came from %q, want the registry's image", got)
	}
}

// layer is a layer holding the files.
func layer(t *testing.T, files map[string][]byte) v1.Layer {
	t.Helper()
	l, err := crane.Layer(files)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
