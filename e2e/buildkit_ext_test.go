package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
)

// buildctl builds an LLB definition (written with BuildKit's client/llb,
// on stdin, as `go run ./def | buildctl build` sends it) on kilnd: a step
// reading the client's local directory, a file op, a local output; the
// second build is cached; what Kiln cannot convert is an error naming it.
func TestBuildctlLLB(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"in.txt": "from the context\n"})
	ctx := context.Background()
	marshal := func(st llb.State) *bytes.Buffer {
		t.Helper()
		def, err := st.Marshal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := llb.WriteTo(def, &b); err != nil {
			t.Fatal(err)
		}
		return &b
	}
	st := llb.Image("busybox").
		Run(llb.Args([]string{"/bin/sh", "-c", "cat /src/in.txt > /out.txt"}), llb.AddMount("/src", llb.Local("context"), llb.Readonly)).Root().
		File(llb.Mkdir("/made", 0o755))
	def := marshal(st).Bytes()
	buildctl := bkTool(t, "buildctl")
	build := func(stdin []byte, args ...string) bkResult {
		t.Helper()
		base := []string{"--addr", e.d.Addr, "build", "--progress", "rawjson", "--local", "context=" + dir}
		return runToolIn(t, nil, bytes.NewReader(stdin), buildctl, append(base, args...)...)
	}

	out := t.TempDir()
	r := build(def, "--output", "type=local,dest="+out)
	if r.err != nil {
		t.Fatalf("buildctl build of an LLB definition: %s", r)
	}
	if b, err := os.ReadFile(filepath.Join(out, "out.txt")); err != nil || string(b) != "from the context\n" {
		t.Errorf("out.txt = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(out, "made")); err != nil || !fi.IsDir() {
		t.Errorf("made: %v", err)
	}
	step := ""
	for name := range r.steps {
		if strings.Contains(name, "cat /src/in.txt") {
			step = name
		}
	}
	if step == "" || !r.steps[step].ran {
		t.Fatalf("no step ran the command; steps: %v", r.steps)
	}
	r = build(def)
	if r.err != nil {
		t.Fatalf("second build: %s", r)
	}
	if !r.steps[step].cached {
		t.Errorf("the second build ran %q again: %+v", step, r.steps[step])
	}

	bad := marshal(llb.Image("busybox").Run(llb.Shlex("true"), llb.AddUlimit(llb.UlimitNofile, 1, 1)).Root())
	if r := build(bad.Bytes()); r.err == nil || !strings.Contains(r.stderr, "meta.ulimit is not supported") {
		t.Errorf("unsupported LLB: want an error naming meta.ulimit; got %s", r)
	}
	if r := build([]byte("not a definition")); r.err == nil || strings.Contains(r.stderr, "panic") {
		t.Errorf("garbage on stdin: %s", r)
	}
}

// BuildKit's Dockerfile frontend, as an image in the test registry, runs
// under buildctl both ways BuildKit offers: --frontend gateway.v0 --opt
// source=IMAGE, and a `# syntax=IMAGE` line with dockerfile.v0; both build
// the image kilnd's built-in frontend builds (same config, same files).
func TestBuildctlGatewayFrontend(t *testing.T) {
	e := newBldEnv(t)
	frontendRef := pushFrontendImage(t, e)
	dir, fixture := gatewayFixtureDir(t)

	build := func(tag, dockerfile string, args ...string) pulled {
		t.Helper()
		writeFiles(t, dir, map[string]string{"Dockerfile": dockerfile})
		ref := e.reg.Ref("bkgw:" + tag)
		base := []string{"build", "--progress", "rawjson", "--local", "context=" + dir, "--local", "dockerfile=" + dir,
			"--opt", "build-arg:GREETING=hi", "--output", "type=image,name=" + ref + ",push=true,registry.insecure=true"}
		r := e.buildctl(append(base, args...)...)
		if r.err != nil {
			t.Fatalf("build %s: %s", tag, r)
		}
		if _, ran := r.steps["[internal] load frontend "+frontendRef]; ran != (tag != "builtin") {
			t.Errorf("build %s: frontend image run = %v; steps %v", tag, ran, r.steps)
		}
		return pullImage(t, e, ref)
	}
	want := build("builtin", fixture, "--frontend", "dockerfile.v0")
	for _, tc := range []struct {
		tag, dockerfile string
		args            []string
	}{
		{"gateway", fixture, []string{"--frontend", "gateway.v0", "--opt", "source=" + frontendRef}},
		{"syntax", "# syntax=" + frontendRef + "\n" + fixture, []string{"--frontend", "dockerfile.v0"}},
	} {
		t.Run(tc.tag, func(t *testing.T) {
			compareImages(t, tc.tag, want, build(tc.tag, tc.dockerfile, tc.args...))
		})
	}
}
