package e2e

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/client/llb"

	"github.com/kiln-build/kiln/internal/testutil"
)

// pushFrontendImage builds BuildKit's Dockerfile frontend (pinned,
// static, from hack/lib.sh) into an image with kiln build and pushes it to
// the test registry; it returns the image's reference.
func pushFrontendImage(t *testing.T, e *bldEnv) string {
	t.Helper()
	bin := testutil.DockerfileFrontend(t)
	dir := t.TempDir()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dockerfile-frontend"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\nCOPY dockerfile-frontend /bin/dockerfile-frontend\nENTRYPOINT [\"/bin/dockerfile-frontend\"]\n"})
	ref := e.reg.Ref("dockerfile:test")
	if r := e.build(dir, "--push", "-t", ref); r.err != nil {
		t.Fatalf("build the frontend image: %v\n%s", r.err, r.stderr)
	}
	return ref
}

// pulled is an image read back from the registry: its config and each
// layer's entries.
type pulled struct {
	cfg    *v1.ConfigFile
	layers []map[string]layerEntry
}

type layerEntry struct {
	Type     byte
	Mode     int64
	UID, GID int
	Link     string
	Sum      string
}

func pullImage(t *testing.T, e *bldEnv, ref string) pulled {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, append(e.reg.RemoteOptions(), remote.WithContext(context.Background()))...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := pulled{cfg: cfg}
	for _, l := range layers {
		out.layers = append(out.layers, layerTree(t, l))
	}
	return out
}

func layerTree(t *testing.T, l v1.Layer) map[string]layerEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]layerEntry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		files[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = layerEntry{Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid, Link: h.Linkname, Sum: hex.EncodeToString(sum[:6])}
	}
	// A hard link is the file it links to (Kiln links context files into
	// snapshots instead of copying them).
	for k, v := range files {
		if v.Type == tar.TypeLink {
			files[k] = files[strings.TrimPrefix(v.Link, "./")]
		}
	}
	return files
}

// BuildKit's own Dockerfile frontend, built from source at a pinned
// version into an image by kiln and pushed to the test registry, runs as
// `# syntax=127.0.0.1:PORT/dockerfile:test` and builds the same image as
// kilnd's built-in frontend: the same config and the same files in every
// layer.
func TestGatewayDockerfileFrontend(t *testing.T) {
	e := newBldEnv(t)
	frontendRef := pushFrontendImage(t, e)
	dir, fixture := gatewayFixtureDir(t)

	build := func(tag, dockerfile string) pulled {
		t.Helper()
		writeFiles(t, dir, map[string]string{"Dockerfile": dockerfile})
		ref := e.reg.Ref("app:" + tag)
		r := e.build(dir, "--push", "-t", ref, "--build-arg", "GREETING=hi")
		if r.err != nil {
			t.Fatalf("build %s: %v\n%s", tag, r.err, r.stderr)
		}
		if _, ran := r.steps["[internal] load frontend "+frontendRef]; ran != (tag == "gateway") {
			t.Errorf("build %s: frontend image run = %v", tag, ran)
		}
		return pullImage(t, e, ref)
	}
	want := build("builtin", fixture)
	got := build("gateway", "# syntax="+frontendRef+"\n"+fixture)
	compareImages(t, "gateway", want, got)
}

// gatewayFixtureDir writes testutil.GatewayFixture's context into a new
// directory and returns it with the fixture on busybox. Builds of it
// differ by their Dockerfile's syntax line: COPY . must not see it.
func gatewayFixtureDir(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	for name, data := range testutil.GatewayFixtureFiles() {
		files[name] = string(data)
	}
	files[".dockerignore"] += "Dockerfile\n"
	writeFiles(t, dir, files)
	return dir, strings.ReplaceAll(testutil.GatewayFixture, "BASE", "busybox")
}

// compareImages reports how got (built by what) differs from the
// built-in frontend's want: config, history, platform, each layer's files.
func compareImages(t *testing.T, what string, want, got pulled) {
	t.Helper()
	if d := cmp.Diff(want.cfg.Config, got.cfg.Config); d != "" {
		t.Errorf("image config differs (-built-in +%s):\n%s", what, d)
	}
	if d := cmp.Diff(want.cfg.History, got.cfg.History, cmpopts.IgnoreFields(v1.History{}, "Created", "Comment")); d != "" {
		t.Errorf("history differs (-built-in +%s):\n%s", what, d)
	}
	if want.cfg.OS != got.cfg.OS || want.cfg.Architecture != got.cfg.Architecture {
		t.Errorf("platform %s/%s, %s %s/%s", want.cfg.OS, want.cfg.Architecture, what, got.cfg.OS, got.cfg.Architecture)
	}
	if len(want.layers) != len(got.layers) {
		t.Fatalf("built-in image has %d layers, %s %d", len(want.layers), what, len(got.layers))
	}
	for i := range want.layers {
		if d := cmp.Diff(want.layers[i], got.layers[i]); d != "" {
			t.Errorf("layer %d differs (-built-in +%s):\n%s", i, what, d)
		}
	}
}

// A syntax image that cannot be pulled fails the build at its line;
// BUILDKIT_SYNTAX picks the frontend image; kilnd.toml can refuse them.
func TestGatewaySyntaxErrorsAndPolicy(t *testing.T) {
	e := newBldEnv(t)
	frontendRef := pushFrontendImage(t, e)
	dir := t.TempDir()
	df := "FROM busybox\nRUN echo ok > /ok\n"
	writeFiles(t, dir, map[string]string{"Dockerfile": "# syntax=" + e.reg.Ref("nope:1") + "\n" + df})

	r := e.build(dir)
	if r.err == nil || !strings.Contains(r.stderr, "Dockerfile:1") || !strings.Contains(r.stderr, e.reg.Ref("nope:1")) {
		t.Errorf("unpullable syntax image: %v\n%s", r.err, tail(r.stderr, 20))
	}

	// --build-arg BUILDKIT_SYNTAX=IMAGE wins over the line.
	r = e.build(dir, "--build-arg", "BUILDKIT_SYNTAX="+frontendRef)
	if r.err != nil {
		t.Fatalf("BUILDKIT_SYNTAX: %v\n%s", r.err, tail(r.stderr, 20))
	}
	if _, ok := r.steps["[internal] load frontend "+frontendRef]; !ok {
		t.Errorf("BUILDKIT_SYNTAX did not run the frontend image:\n%s", tail(r.stderr, 20))
	}

	// A daemon that does not run frontend images says so at the line.
	if err := e.d.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	e.cfg += "[frontend]\ngateway = false\n"
	e.start()
	writeFiles(t, dir, map[string]string{"Dockerfile": "# syntax=" + frontendRef + "\n" + df})
	r = e.build(dir)
	if r.err == nil || !strings.Contains(r.stderr, "Dockerfile:1") || !strings.Contains(r.stderr, "gateway = false") {
		t.Errorf("disabled gateway: %v\n%s", r.err, tail(r.stderr, 20))
	}
}

// kiln build --llb builds a BuildKit LLB definition (written with
// BuildKit's client/llb, as `go run ... | buildctl build` would send it)
// on a real kilnd, cached the second time; what Kiln cannot run is a clear
// error.
func TestBuildLLBDefinition(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"in.txt": "from the context\n"})
	ctx := context.Background()
	st := llb.Image("busybox").
		Run(llb.Args([]string{"/bin/sh", "-c", "cat /src/in.txt > /out.txt"}), llb.AddMount("/src", llb.Local("context"), llb.Readonly)).Root().
		File(llb.Mkdir("/made", 0o755))
	def, err := st.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "def.pb")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := llb.WriteTo(def, f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	out := t.TempDir()
	r := e.build(dir, "--llb", file, "-o", "type=local,dest="+out)
	if r.err != nil {
		t.Fatalf("kiln build --llb: %v\n%s", r.err, tail(r.stderr, 20))
	}
	if b, err := os.ReadFile(filepath.Join(out, "out.txt")); err != nil || string(b) != "from the context\n" {
		t.Errorf("out.txt = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(out, "made")); err != nil || !fi.IsDir() {
		t.Errorf("made: %v", err)
	}
	r = e.build(dir, "--llb", file)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if st := r.step(t, "cat /src/in.txt"); !st.cached {
		t.Errorf("the second build ran the step again")
	}

	bad, err := llb.Image("busybox").Run(llb.Shlex("true"), llb.AddUlimit(llb.UlimitNofile, 1, 1)).Root().Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := bad.ToPB().MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, dt, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.build(dir, "--llb", file); r.err == nil || !strings.Contains(r.stderr, "meta.ulimit is not supported") {
		t.Errorf("unsupported LLB: %v\n%s", r.err, tail(r.stderr, 10))
	}
	if err := os.WriteFile(file, []byte("not a definition"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.build(dir, "--llb", file); r.err == nil || !strings.Contains(r.stderr, "not a BuildKit LLB definition") {
		t.Errorf("garbage: %v\n%s", r.err, tail(r.stderr, 10))
	}
}
