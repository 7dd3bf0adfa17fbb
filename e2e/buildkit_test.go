package e2e

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/testutil"
)

// bkFixture writes a build context that uses stages, a build arg, a
// .dockerignore and a named context, and the named context's directory.
func bkFixture(t *testing.T) (dir, extra string) {
	t.Helper()
	dir, extra = t.TempDir(), t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": `FROM busybox AS base
ARG GREETING=hello
COPY app/ /app/
RUN echo "$GREETING" > /app/greeting.txt

FROM base AS test
RUN echo test > /app/test.txt

FROM base
COPY --from=extra data.txt /app/extra.txt
CMD ["cat", "/app/greeting.txt"]
`,
		".dockerignore":   "app/ignored.txt\n",
		"app/main.txt":    "main\n",
		"app/ignored.txt": "ignored\n",
	})
	writeFiles(t, extra, map[string]string{"data.txt": "extra\n"})
	return dir, extra
}

// bkFixtureArgs are the buildctl flags for bkFixture's named context and
// build args.
func bkFixtureArgs(extra string, more ...string) []string {
	return append([]string{"--local", "extra=" + extra, "--opt", "context:extra=local:extra",
		"--opt", "build-arg:GREETING=hi", "--opt", "build-arg:SOURCE_DATE_EPOCH=1700000000", "--opt", "label:org.example.by=kiln"}, more...)
}

// kilnBuild runs kiln build and fails the test if it fails.
func (e *bldEnv) kilnBuild(args ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := e.kilnCmd(ctx, append([]string{"build", "--progress", "plain"}, args...)...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("kiln build %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The same inputs give the same image whether kiln build or buildctl asks
// for it: buildctl runs every step again (--no-cache) and, with
// SOURCE_DATE_EPOCH, produces the image digest kiln build did.
func TestBuildctlMatchesKilnBuild(t *testing.T) {
	e := newBldEnv(t)
	dir, extra := bkFixture(t)
	out := t.TempDir()
	e.kilnBuild("--build-context", "extra="+extra, "--build-arg", "GREETING=hi", "--build-arg", "SOURCE_DATE_EPOCH=1700000000",
		"--label", "org.example.by=kiln", "-o", "type=oci,dest="+filepath.Join(out, "kiln.tar"), "--metadata-file", filepath.Join(out, "kiln.json"), dir)

	r := e.bkBuild(dir, bkFixtureArgs(extra, "--no-cache", "--output", "type=oci,dest="+filepath.Join(out, "bk.tar"), "--metadata-file", filepath.Join(out, "bk.json"))...)
	if r.err != nil {
		t.Fatalf("buildctl build: %s", r)
	}
	if ran := r.ranSteps(); len(ran) < 3 {
		t.Errorf("buildctl --no-cache ran %v, want every step", ran)
	}
	kd, bd := metadataDigest(t, filepath.Join(out, "kiln.json")), metadataDigest(t, filepath.Join(out, "bk.json"))
	if kd != bd {
		t.Errorf("image digest: kiln build %s, buildctl %s", kd, bd)
	}
	if names := tarNames(t, filepath.Join(out, "bk.tar")); !slices.Contains(names, "index.json") || !slices.Contains(names, "oci-layout") {
		t.Errorf("buildctl's type=oci output is not an OCI layout: %v", names)
	}
}

// Outputs written on the client (local, tar) and pushed to a registry,
// with a target stage; a second build transfers nothing and runs nothing.
func TestBuildctlOutputs(t *testing.T) {
	e := newBldEnv(t)
	dir, extra := bkFixture(t)
	out := t.TempDir()

	// type=local of the test stage: the files, without the ignored one.
	local := filepath.Join(out, "local")
	r := e.bkBuild(dir, bkFixtureArgs(extra, "--opt", "target=test", "--output", "type=local,dest="+local)...)
	if r.err != nil {
		t.Fatalf("buildctl type=local: %s", r)
	}
	for f, want := range map[string]string{"app/greeting.txt": "hi\n", "app/test.txt": "test\n", "app/main.txt": "main\n"} {
		if b, err := os.ReadFile(filepath.Join(local, f)); err != nil || string(b) != want {
			t.Errorf("type=local %s = %q, %v; want %q", f, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(local, "app/ignored.txt")); err == nil {
		t.Errorf("type=local holds app/ignored.txt, which .dockerignore excludes")
	}
	if _, err := os.Stat(filepath.Join(local, "app/extra.txt")); err == nil {
		t.Errorf("type=local of target test holds the final stage's file")
	}

	// type=tar of the final stage.
	tarFile := filepath.Join(out, "fs.tar")
	r = e.bkBuild(dir, bkFixtureArgs(extra, "--output", "type=tar,dest="+tarFile)...)
	if r.err != nil {
		t.Fatalf("buildctl type=tar: %s", r)
	}
	if names := tarNames(t, tarFile); !slices.Contains(names, "app/extra.txt") || !slices.Contains(names, "bin/busybox") {
		t.Errorf("type=tar lacks app/extra.txt or bin/busybox: %d entries", len(names))
	}

	// type=image,push=true: the registry holds the digest buildctl reports.
	ref := e.reg.Ref("bk/app:1")
	meta := filepath.Join(out, "push.json")
	r = e.bkBuild(dir, bkFixtureArgs(extra, "--output", "type=image,name="+ref+",push=true,registry.insecure=true", "--metadata-file", meta)...)
	if r.err != nil {
		t.Fatalf("buildctl push: %s", r)
	}
	e.checkPushed(ref, meta)

	// Nothing changed: nothing runs, and the context is not sent again.
	r = e.bkBuild(dir, bkFixtureArgs(extra, "--output", "type=image,name="+ref+",push=true,registry.insecure=true")...)
	if r.err != nil || len(r.ranSteps()) != 0 {
		t.Errorf("unchanged rebuild ran %v: %s", r.ranSteps(), r)
	}
	if !strings.Contains(r.logs, "transferred 0B in 0 of 4 files") {
		t.Errorf("unchanged rebuild transferred context files again:\n%s", r.logs)
	}
	// One file changed: only it is sent, and the steps after it run.
	writeFiles(t, dir, map[string]string{"app/main.txt": "main, changed\n"})
	r = e.bkBuild(dir, bkFixtureArgs(extra)...)
	if r.err != nil {
		t.Fatalf("rebuild after a change: %s", r)
	}
	if !strings.Contains(r.logs, "in 1 of 4 files") {
		t.Errorf("a one-file change did not transfer exactly one file:\n%s", r.logs)
	}
	if st := r.steps["[base 2/3] COPY app/ /app/"]; !st.ran || st.reason == "" {
		t.Errorf("COPY after the change: ran=%v, miss reason %q; steps %v", st.ran, st.reason, r.steps)
	}
}

// checkPushed checks that the registry holds ref with the digest the
// client's --metadata-file reports.
func (e *bldEnv) checkPushed(ref, meta string) {
	e.t.Helper()
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	desc, err := remote.Head(tag, e.reg.RemoteOptions()...)
	if err != nil {
		e.t.Fatalf("the pushed image is not in the registry: %v", err)
	}
	if got := metadataDigest(e.t, meta); got != desc.Digest.String() {
		e.t.Errorf("the client reported %s, the registry has %s", got, desc.Digest)
	}
}

func tarNames(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/"))
	}
}

// another starts a second kilnd on a new root, with the same registry: a
// machine with a cold cache.
func (e *bldEnv) another() *bldEnv {
	e.t.Helper()
	o := &bldEnv{t: e.t, kiln: e.kiln, kilnd: e.kilnd, reg: e.reg, root: e.t.TempDir(), cfg: e.cfg}
	o.start()
	return o
}

// --export-cache and --import-cache of type registry, local and inline: a
// daemon with a cold cache runs nothing when it imports what another one
// exported.
func TestBuildctlCacheExportImport(t *testing.T) {
	e := newBldEnv(t)
	dir, extra := bkFixture(t)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	cacheRef, imageRef := e.reg.Ref("bk/cache:max"), e.reg.Ref("bk/inline:1")
	r := e.bkBuild(dir, bkFixtureArgs(extra,
		"--export-cache", "type=registry,ref="+cacheRef+",mode=max",
		"--export-cache", "type=local,dest="+cacheDir+",mode=max",
		"--export-cache", "type=inline",
		"--output", "type=image,name="+imageRef+",push=true")...)
	if r.err != nil {
		t.Fatalf("build exporting caches: %s", r)
	}
	// buildctl names the manifest the daemon wrote in its index.json.
	idx := readMetadata(t, filepath.Join(cacheDir, "index.json"))
	if ms, _ := idx["manifests"].([]any); len(ms) != 1 {
		t.Fatalf("local cache index.json: %v", idx)
	}
	for _, tc := range []struct {
		name string
		from string
	}{
		{"registry", "type=registry,ref=" + cacheRef},
		{"local", "type=local,src=" + cacheDir},
		{"inline", "type=registry,ref=" + imageRef},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cold := e.another()
			r := cold.bkBuild(dir, bkFixtureArgs(extra, "--import-cache", tc.from)...)
			if r.err != nil {
				t.Fatalf("build importing %s: %s", tc.from, r)
			}
			if ran := r.ranSteps(); len(ran) != 0 {
				t.Errorf("a cold daemon importing %s ran %v", tc.from, ran)
			}
			if st := r.steps[`[base 3/3] RUN echo "hi" > /app/greeting.txt`]; !st.cached {
				t.Errorf("the RUN step is not marked cached: %v", r.steps)
			}
		})
	}
}

// A secret and the client's ssh agent reach RUN steps; the secret does not
// land in the image; a secret the client did not give is a clear error.
func TestBuildctlSecretsAndSSH(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "agentcheck"), "./testdata/agentcheck")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build agentcheck: %v\n%s", err, out)
	}
	key := filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Skipf("ssh-keygen (openssh-client) is needed for the ssh forwarding test: %v\n%s", err, out)
	}
	secret := filepath.Join(t.TempDir(), "token")
	writeFiles(t, filepath.Dir(secret), map[string]string{"token": "s3cr3t"})
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM busybox
COPY agentcheck /agentcheck
RUN --mount=type=secret,id=token,required=true test "$(cat /run/secrets/token)" = s3cr3t && echo secret-ok > /secret-ok
RUN --mount=type=ssh /agentcheck > /ssh-keys
`})
	out := filepath.Join(t.TempDir(), "out")
	r := e.bkBuild(dir, "--secret", "id=token,src="+secret, "--ssh", "default="+key, "--output", "type=local,dest="+out)
	if r.err != nil {
		t.Fatalf("build with a secret and ssh: %s", r)
	}
	for f, want := range map[string]string{"secret-ok": "secret-ok\n", "ssh-keys": "1\n"} {
		if b, err := os.ReadFile(filepath.Join(out, f)); err != nil || string(b) != want {
			t.Errorf("/%s = %q, %v; want %q", f, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "run/secrets/token")); err == nil {
		t.Errorf("the secret file is in the image")
	}

	r = e.bkBuild(dir, "--no-cache", "--ssh", "default="+key)
	if r.err == nil || !strings.Contains(r.stderr, "secret token") {
		t.Errorf("a missing secret: want an error naming it, got %s", r)
	}
}

// What kilnd does not do is refused at once, with an error that names it.
func TestBuildctlUnsupported(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN true\n"})
	bad := t.TempDir()
	writeFiles(t, bad, map[string]string{"Dockerfile": "FROM busybox\nRUN\n"})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"gateway without source", []string{"build", "--frontend", "gateway.v0", "--local", "context=" + dir, "--local", "dockerfile=" + dir}, `needs the "source" option`},
		{"unreachable frontend image", []string{"build", "--frontend", "gateway.v0", "--opt", "source=127.0.0.1:1/nope:1", "--local", "context=" + dir, "--local", "dockerfile=" + dir}, "127.0.0.1:1/nope:1"},
		{"unknown frontend", []string{"build", "--frontend", "nope.v9", "--local", "context=" + dir, "--local", "dockerfile=" + dir}, `unknown frontend "nope.v9"`},
		{"gateway option to dockerfile.v0", dfArgs(dir, "--opt", "source=docker/dockerfile:1"), "gateway.v0 frontend's option"},
		{"unknown exporter", dfArgs(dir, "--output", "type=s3,name=x"), `unknown exporter "s3"`},
		{"unknown exporter attribute", dfArgs(dir, "--output", "type=image,name=x,colour=blue"), `unknown attribute "colour"`},
		{"unknown frontend option", dfArgs(dir, "--opt", "colour=blue"), `unknown frontend option "colour"`},
		{"attestation", dfArgs(dir, "--opt", "attest:sbom="), "attestations (attest:sbom)"},
		{"unknown cache type", dfArgs(dir, "--export-cache", "type=memcached,ref=x"), `unknown cache type "memcached"`},
		{"Dockerfile error", dfArgs(bad), "Dockerfile:2"},
		{"missing Dockerfile", dfArgs(dir, "--opt", "filename=Nope"), "failed to read dockerfile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.buildctl(tc.args...)
			if r.err == nil || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want an error containing %q; got %s", tc.want, r)
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
				t.Errorf("a Go stack or panic reached the client:\n%s", r.stderr)
			}
		})
	}
}

func dfArgs(dir string, more ...string) []string {
	return append([]string{"build", "--frontend", "dockerfile.v0", "--local", "context=" + dir, "--local", "dockerfile=" + dir}, more...)
}

// docker buildx with the remote driver builds on kilnd: the same image as
// kiln build (with SOURCE_DATE_EPOCH), pushed or written on the client.
func TestBuildxRemoteDriver(t *testing.T) {
	e := newBldEnv(t)
	buildx := bkTool(t, "buildx")
	cfg := t.TempDir()
	env := []string{"BUILDX_CONFIG=" + filepath.Join(cfg, "buildx"), "DOCKER_CONFIG=" + filepath.Join(cfg, "docker")}
	bx := func(args ...string) bkResult { return runTool(t, env, buildx, args...) }
	if r := bx("create", "--name", "kiln", "--driver", "remote", e.d.Addr); r.err != nil {
		t.Fatalf("buildx create: %s", r)
	}
	r := bx("--builder", "kiln", "inspect", "--bootstrap")
	if r.err != nil || !strings.Contains(r.stdout, "Status:           running") {
		t.Fatalf("buildx inspect: %s", r)
	}

	dir, extra := bkFixture(t)
	out := t.TempDir()
	e.kilnBuild("--build-context", "extra="+extra, "--build-arg", "GREETING=hi", "--build-arg", "SOURCE_DATE_EPOCH=1700000000",
		"--label", "org.example.by=kiln", "-o", "type=oci,dest="+filepath.Join(out, "kiln.tar"), "--metadata-file", filepath.Join(out, "kiln.json"), dir)
	args := []string{"--builder", "kiln", "build", "--progress", "rawjson", "--build-context", "extra=" + extra,
		"--build-arg", "GREETING=hi", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "--label", "org.example.by=kiln"}
	build := func(more ...string) bkResult {
		t.Helper()
		r := bx(append(append(append([]string{}, args...), more...), dir)...)
		if r.err != nil {
			t.Fatalf("buildx build %v: %s", more, r)
		}
		return r
	}

	// -o type=oci: the digest kiln build made, every step rebuilt.
	r = build("--no-cache", "-o", "type=oci,dest="+filepath.Join(out, "bx.tar"), "--metadata-file", filepath.Join(out, "bx.json"))
	if ran := r.ranSteps(); len(ran) < 3 {
		t.Errorf("buildx --no-cache ran %v, want every step", ran)
	}
	if kd, bd := metadataDigest(t, filepath.Join(out, "kiln.json")), metadataDigest(t, filepath.Join(out, "bx.json")); kd != bd {
		t.Errorf("image digest: kiln build %s, buildx %s", kd, bd)
	}

	// --push: the registry holds what buildx reports; nothing runs again.
	ref := e.reg.Ref("bx/app:1")
	r = build("--push", "-t", ref, "--metadata-file", filepath.Join(out, "push.json"))
	if ran := r.ranSteps(); len(ran) != 0 {
		t.Errorf("buildx --push after the same build ran %v", ran)
	}
	e.checkPushed(ref, filepath.Join(out, "push.json"))

	// -o type=local of a target stage.
	local := filepath.Join(out, "local")
	build("--target", "test", "-o", "type=local,dest="+local)
	if b, err := os.ReadFile(filepath.Join(local, "app/test.txt")); err != nil || string(b) != "test\n" {
		t.Errorf("type=local app/test.txt = %q, %v", b, err)
	}

	// buildx du lists the cache; prune --all empties it, and the next
	// build runs its steps again.
	if r := bx("--builder", "kiln", "du"); r.err != nil || !strings.Contains(r.stdout, "Total:") {
		t.Errorf("buildx du: %s", r)
	}
	if r := bx("--builder", "kiln", "prune", "--all", "--force"); r.err != nil || !strings.Contains(r.stdout, "Total:") {
		t.Errorf("buildx prune: %s", r)
	}
	if r := build(); len(r.ranSteps()) < 3 {
		t.Errorf("after buildx prune --all, the build ran only %v", r.ranSteps())
	}
}

// buildx build --load (remote driver on kilnd) loads the image into a
// Docker engine (Debian's dockerd, started here): the engine holds the
// image kiln build makes from the same inputs, and runs it.
func TestBuildxLoad(t *testing.T) {
	e := newBldEnv(t)
	buildx := bkTool(t, "buildx")
	dk := testutil.StartDockerd(t)
	cfg := t.TempDir()
	env := []string{"BUILDX_CONFIG=" + filepath.Join(cfg, "buildx"), "DOCKER_CONFIG=" + filepath.Join(cfg, "docker"), "DOCKER_HOST=" + dk.Host}
	bx := func(args ...string) bkResult { return runTool(t, env, buildx, args...) }
	docker := func(args ...string) bkResult { return runTool(t, env, dk.Docker, args...) }
	if r := bx("create", "--name", "kiln", "--driver", "remote", e.d.Addr); r.err != nil {
		t.Fatalf("buildx create: %s", r)
	}

	dir, out := t.TempDir(), t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN echo \"Hello, Kiln!\" > /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n"})
	// --load exports a Docker image (Docker media types): so does kiln
	// build's type=docker.
	e.kilnBuild("--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-o", "type=docker,dest="+filepath.Join(out, "kiln.tar"),
		"--metadata-file", filepath.Join(out, "kiln.json"), dir)
	const tag = "kiln-e2e/hello:load"
	r := bx("--builder", "kiln", "build", "--progress", "rawjson", "--load", "-t", tag,
		"--build-arg", "SOURCE_DATE_EPOCH=1700000000", "--metadata-file", filepath.Join(out, "bx.json"), dir)
	if r.err != nil {
		t.Fatalf("buildx build --load: %s", r)
	}
	if kd, bd := metadataDigest(t, filepath.Join(out, "kiln.json")), metadataDigest(t, filepath.Join(out, "bx.json")); kd != bd {
		t.Errorf("image digest: kiln build %s, buildx --load %s", kd, bd)
	}
	// The engine's image id is the config's digest.
	config, _ := readMetadata(t, filepath.Join(out, "kiln.json"))["containerimage.config.digest"].(string)
	r = docker("image", "inspect", "--format", "{{.Id}}", tag)
	if r.err != nil || strings.TrimSpace(r.stdout) != config || config == "" {
		t.Errorf("docker image inspect %s: want id %q; got %s", tag, config, r)
	}
	r = docker("run", "--rm", "--network", "none", tag)
	if r.err != nil || r.stdout != "Hello, Kiln!\n" {
		t.Errorf("docker run %s: %s", tag, r)
	}
}

// --opt platform builds each platform (foreign ones through QEMU) into one
// index, as kiln build --platform does.
func TestBuildctlPlatforms(t *testing.T) {
	e := newBldEnv(t)
	testutil.PushIndex(t, e.reg.Ref("library/busybox:latest"), testutil.BusyboxIndex(t), e.reg.RemoteOptions()...)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN uname -m > /arch\n"})
	out := t.TempDir()
	e.kilnBuild("--platform", "linux/amd64,linux/arm64", "--build-arg", "SOURCE_DATE_EPOCH=1700000000",
		"-o", "type=oci,dest="+filepath.Join(out, "kiln.tar"), "--metadata-file", filepath.Join(out, "kiln.json"), dir)
	local := filepath.Join(out, "local")
	r := e.bkBuild(dir, "--opt", "platform=linux/amd64,linux/arm64", "--opt", "build-arg:SOURCE_DATE_EPOCH=1700000000",
		"--output", "type=oci,dest="+filepath.Join(out, "bk.tar"), "--metadata-file", filepath.Join(out, "bk.json"))
	if r.err != nil {
		t.Fatalf("buildctl with two platforms: %s", r)
	}
	if kd, bd := metadataDigest(t, filepath.Join(out, "kiln.json")), metadataDigest(t, filepath.Join(out, "bk.json")); kd != bd {
		t.Errorf("index digest: kiln build %s, buildctl %s", kd, bd)
	}
	r = e.bkBuild(dir, "--opt", "platform=linux/arm64", "--output", "type=local,dest="+local)
	if r.err != nil {
		t.Fatalf("buildctl for arm64: %s", r)
	}
	if b, err := os.ReadFile(filepath.Join(local, "arch")); err != nil || strings.TrimSpace(string(b)) != "aarch64" {
		t.Errorf("the arm64 step ran as %q (%v), want aarch64", b, err)
	}
}

// buildctl's registry login (its docker config) reaches kilnd through the
// session's auth service: a push to a registry that wants one works with
// it and fails, saying why, without it.
func TestBuildctlRegistryAuth(t *testing.T) {
	e := newBldEnv(t)
	private := testutil.StartDistribution(t, testutil.DistributionOptions{Users: map[string]string{"kiln": "s3cret"}})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN echo private > /p\n"})
	ref := private.Ref("bk/private:1")
	args := []string{"build", "--progress", "plain", "--frontend", "dockerfile.v0", "--local", "context=" + dir, "--local", "dockerfile=" + dir,
		"--output", "type=image,name=" + ref + ",push=true,registry.insecure=true"}
	home := t.TempDir()
	env := []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	r := runTool(t, env, bkTool(t, "buildctl"), append([]string{"--addr", e.d.Addr}, args...)...)
	if r.err == nil || !strings.Contains(strings.ToLower(r.stderr), "auth") {
		t.Errorf("push without a login: want an authorization error, got %s", r)
	}
	writeDockerLogin(t, home, private.Host, "kiln", "s3cret")
	r = runTool(t, env, bkTool(t, "buildctl"), append([]string{"--addr", e.d.Addr}, args...)...)
	if r.err != nil {
		t.Fatalf("push with a login: %s", r)
	}
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(tag, private.RemoteOptions()...); err != nil {
		t.Errorf("the pushed image is not in the registry: %v", err)
	}
}

// BuildKit's API is served on TCP listeners with mutual TLS too.
func TestBuildctlMutualTLS(t *testing.T) {
	kilnd, _ := binaries(t)
	dir := t.TempDir()
	ca, err := testutil.NewCA("kiln e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	srvCert, srvKey, err := ca.IssueFiles(dir, "server", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey, err := ca.IssueFiles(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := ca.WriteCertFile(caFile); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "tcp://" + l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("[grpc.tls]\ncert = %q\nkey = %q\nca = %q\n", srvCert, srvKey, caFile)
	testutil.StartDaemon(t, kilnd, testutil.WithDaemonConfig(cfg), testutil.WithDaemonArgs("--addr", addr))
	buildctl := bkTool(t, "buildctl")
	r := runTool(t, nil, buildctl, "--addr", addr, "--tlscacert", caFile, "--tlscert", cliCert, "--tlskey", cliKey, "debug", "workers")
	if r.err != nil || !strings.Contains(r.stdout, "linux/amd64") {
		t.Errorf("buildctl debug workers over mTLS: %s", r)
	}
	// Without a client certificate the daemon refuses the connection.
	r = runTool(t, nil, buildctl, "--addr", addr, "--tlscacert", caFile, "debug", "workers")
	if r.err == nil {
		t.Errorf("buildctl without a client certificate was served: %s", r)
	}
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Dockerfile": "FROM scratch\nCOPY a.txt /\n", "a.txt": "over tls\n"})
	out := filepath.Join(t.TempDir(), "out")
	r = runTool(t, nil, buildctl, "--addr", addr, "--tlscacert", caFile, "--tlscert", cliCert, "--tlskey", cliKey,
		"build", "--frontend", "dockerfile.v0", "--local", "context="+ctxDir, "--local", "dockerfile="+ctxDir, "--output", "type=local,dest="+out)
	if b, err := os.ReadFile(filepath.Join(out, "a.txt")); r.err != nil || err != nil || string(b) != "over tls\n" {
		t.Errorf("build over mTLS: a.txt = %q, %v; %s", b, err, r)
	}
}
