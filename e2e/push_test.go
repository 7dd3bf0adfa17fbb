package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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
