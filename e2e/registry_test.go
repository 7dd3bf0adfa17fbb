package e2e

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestPushAndPullBack pushes a built image to the real distribution server
// with the client's docker login, pulls it back by digest into another
// kilnd and runs it there.
func TestPushAndPullBack(t *testing.T) {
	t.Parallel()
	reg := testutil.StartDistribution(t, testutil.DistributionOptions{Users: map[string]string{"kiln": "s3cret"}})
	e := newEnv(t)
	e.importBusybox()
	e.buildHello("my-hello-app")
	target := reg.Ref("e2e/hello:1")
	e.ok("image", "tag", "my-hello-app", target)

	// Without a login the registry refuses, and says so.
	r := e.run(nil, "image", "push", target)
	if r.code != 1 || !strings.Contains(r.stderr, reg.Host) || !strings.Contains(strings.ToLower(r.stderr), "auth") {
		t.Errorf("push without login: %s", r)
	}

	writeDockerLogin(t, e.home, reg.Host, "kiln", "s3cret")
	r = e.ok("image", "push", target)
	m := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("push output has no digest: %s", r)
	}
	dgst := m[1]
	inspect := e.ok("image", "inspect", "--format", "{{.Digest}}", target)
	if strings.TrimSpace(inspect.stdout) != dgst {
		t.Errorf("pushed digest %s, local image %s", dgst, inspect.stdout)
	}

	// The registry has it, byte for byte, and it is a valid image.
	ref, err := name.ParseReference(reg.Ref("e2e/hello@" + dgst))
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("pushed image: %v", err)
	}

	// Another kilnd pulls it by digest (with the forwarded login) and runs it.
	e2 := newEnv(t)
	e2.home = e.home
	r = e2.run([]byte("FROM "+reg.Ref("e2e/hello@"+dgst)+"\n"), "build", "--progress", "plain", "-t", "pulled", "-")
	if r.code != 0 {
		t.Fatalf("build FROM the pushed image: %s", r)
	}
	if r := e2.ok("run", "pulled"); r.stdout != "Hello, Kiln!\n" {
		t.Errorf("run the pulled image: %s", r)
	}
}

// TestPushUnreachable checks that a failed push names the registry and
// leaves the image in the store.
func TestPushUnreachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.importBusybox()
	e.ok("image", "tag", "busybox", "127.0.0.1:1/e2e/busybox:1")
	e.fails(1, "127.0.0.1:1", "image", "push", "127.0.0.1:1/e2e/busybox:1")
	if r := e.ok("images"); !strings.Contains(r.stdout, "127.0.0.1:1/e2e/busybox") {
		t.Errorf("the image left the store after a failed push:\n%s", r.stdout)
	}
	e.fails(1, `image "127.0.0.1:1/e2e/nothing:latest" not found in kilnd's image store`, "image", "push", "127.0.0.1:1/e2e/nothing")
	e.fails(1, "push a name (a tag), not a digest", "image", "push", "busybox@sha256:"+strings.Repeat("a", 64))
}

// writeDockerLogin writes ~/.docker/config.json with a login for host.
func writeDockerLogin(t *testing.T, home, host, user, pass string) {
	t.Helper()
	dir := filepath.Join(home, ".docker")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	cfg := `{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}
