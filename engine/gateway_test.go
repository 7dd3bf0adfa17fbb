package engine

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile"
	"github.com/kiln-build/kiln/frontend/gateway"
	"github.com/kiln-build/kiln/internal/testutil"
)

// gatewayHarness is an engine with the gateway frontend, and BuildKit's
// Dockerfile frontend built into an image (by a Kiln build) and pushed to
// the test registry as HOST/dockerfile:test.
func gatewayHarness(t *testing.T, policy SyntaxPolicy) (*harness, string) {
	t.Helper()
	h := newHarnessWith(t, Options{
		Frontends: map[string]frontend.Frontend{FrontendDockerfile: dockerfile.New(), gateway.Name: gateway.New()},
		Syntax:    policy,
	})
	host, _, _ := strings.Cut(h.base, "/")
	img := host + "/dockerfile:test"
	h.pushBinary(t, testutil.DockerfileFrontend(t), img)
	return h, img
}

// pushBinary builds an image holding the program bin as its entrypoint
// (with a Kiln build) and pushes it to the test registry as ref.
func (h *harness) pushBinary(t *testing.T, bin, ref string) {
	t.Helper()
	ctxDir := t.TempDir()
	if err := copyFileTo(bin, filepath.Join(ctxDir, "frontend")); err != nil {
		t.Fatal(err)
	}
	h.sess.Dirs["frontend-bin"] = ctxDir
	df := "FROM scratch\nCOPY --from=bin frontend /bin/frontend\nENTRYPOINT [\"/bin/frontend\"]\n"
	_, err := h.e.Build(context.Background(), Request{
		Ref: "frontend-image", Dockerfile: []byte(df), DockerfileName: "Dockerfile",
		NamedContexts: map[string]frontend.NamedContext{"bin": {Local: "frontend-bin"}},
		Outputs:       []Output{{Type: "registry", Attrs: map[string]string{"name": ref}}},
	}, h.sess, &stepLog{})
	if err != nil {
		t.Fatalf("build the frontend image %s: %v", ref, err)
	}
}

func copyFileTo(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// imageConfig builds req into the image store under name and returns the
// image's config.
func (h *harness) imageConfig(t *testing.T, name string, req Request) imageconfig.DockerImage {
	t.Helper()
	req.Outputs = []Output{{Type: "image", Attrs: map[string]string{"name": name}}}
	req.Dockerfile = []byte(strings.ReplaceAll(string(req.Dockerfile), "BASE", h.base))
	req.DockerfileName, req.ContextPath, req.HasContext, req.Ref = "Dockerfile", h.ctx, true, name
	h.steps = &stepLog{}
	if _, err := h.e.Build(context.Background(), req, h.sess, h.steps); err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	img, err := h.e.imageStore.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	readJSON(t, h, img.Target.Digest.String(), &m)
	var cfg imageconfig.DockerImage
	readJSON(t, h, m.Config.Digest.String(), &cfg)
	return cfg
}

// BuildKit's own Dockerfile frontend, run by the gateway from a
// `# syntax=` line, builds what Kiln's built-in frontend builds: the same
// files and the same image config.
func TestGatewayDockerfileFrontend(t *testing.T) {
	h, img := gatewayHarness(t, SyntaxPolicy{})
	files := testutil.GatewayFixtureFiles()
	for name, data := range files {
		h.write(t, name, string(data))
	}
	dockerignore := files[".dockerignore"]
	builtin := Request{Dockerfile: []byte(testutil.GatewayFixture), Dockerignore: dockerignore, BuildArgs: map[string]string{"GREETING": "hi"}}
	external := Request{Dockerfile: []byte("# syntax=" + img + "\n" + testutil.GatewayFixture), Dockerignore: dockerignore, BuildArgs: map[string]string{"GREETING": "hi"}}

	want := h.buildTree(t, builtin)
	got := h.buildTree(t, external)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("files differ (-built-in +gateway):\n%s", d)
	}
	if _, ok := h.steps.find("load frontend " + img); !ok {
		t.Errorf("the gateway build did not run the frontend image")
	}
	for _, p := range []string{"ctx/dir/ignored.txt", "linked/ignored.txt"} {
		if _, ok := got[p]; ok {
			t.Errorf("%s was copied although .dockerignore excludes it", p)
		}
	}
	// Again: the frontend's steps are cache hits.
	h.buildTree(t, external)
	if st, ok := h.steps.find("RUN --mount=type=cache"); !ok || !st.Cached {
		t.Errorf("the RUN step of a repeated gateway build: %+v (found %v)", st, ok)
	}

	wantCfg := h.imageConfig(t, "builtin:1", builtin)
	gotCfg := h.imageConfig(t, "gateway:1", external)
	ignore := cmpopts.IgnoreFields(ocispec.History{}, "Created", "Comment")
	if d := cmp.Diff(wantCfg.Config, gotCfg.Config); d != "" {
		t.Errorf("image config differs (-built-in +gateway):\n%s", d)
	}
	if d := cmp.Diff(wantCfg.History, gotCfg.History, ignore); d != "" {
		t.Errorf("history differs (-built-in +gateway):\n%s", d)
	}
	if wantCfg.OS != gotCfg.OS || wantCfg.Architecture != gotCfg.Architecture || len(wantCfg.RootFS.DiffIDs) != len(gotCfg.RootFS.DiffIDs) {
		t.Errorf("platform or layers differ: %s/%s %d layers, gateway %s/%s %d layers", wantCfg.OS, wantCfg.Architecture,
			len(wantCfg.RootFS.DiffIDs), gotCfg.OS, gotCfg.Architecture, len(gotCfg.RootFS.DiffIDs))
	}
}

// The syntax image can be pinned or refused by the daemon and named by
// the BUILDKIT_SYNTAX build arg; one that cannot be pulled is an error at
// its line.
func TestGatewaySyntaxPolicy(t *testing.T) {
	h, img := gatewayHarness(t, SyntaxPolicy{Builtin: []string{"docker/dockerfile"}})
	host, _, _ := strings.Cut(h.base, "/")
	df := "FROM BASE\nRUN echo ok > /ok\n"

	// A missing image: the error names the line.
	_, err := h.build(t, "\n# syntax="+host+"/nope:1\n"+df, Request{})
	var se *errdefs.SourceError
	if !errors.As(err, &se) || se.File != "Dockerfile" || se.Range.Start != 2 || !strings.Contains(err.Error(), host+"/nope:1") {
		t.Errorf("unpullable syntax image: %v, want an error at Dockerfile:2 naming it", err)
	}

	// A built-in syntax is built without pulling anything.
	if _, err := h.build(t, "# syntax=docker/dockerfile:1.7\n"+df, Request{}); err != nil {
		t.Errorf("built-in syntax: %v", err)
	}
	if _, ok := h.steps.find("load frontend"); ok {
		t.Errorf("a built-in syntax ran a frontend image")
	}

	// BUILDKIT_SYNTAX wins over the line.
	if _, err := h.build(t, "# syntax="+host+"/nope:1\n"+df, Request{BuildArgs: map[string]string{"BUILDKIT_SYNTAX": img}}); err != nil {
		t.Fatalf("BUILDKIT_SYNTAX: %v", err)
	}
	if _, ok := h.steps.find("load frontend " + img); !ok {
		t.Errorf("BUILDKIT_SYNTAX did not run %s", img)
	}

	// BuildKit's way: the gateway frontend by name, its image in the
	// "source" option.
	if _, err := h.build(t, df, Request{Frontend: FrontendGateway, FrontendOpts: map[string]string{"source": img}}); err != nil {
		t.Fatalf("frontend gateway.v0: %v", err)
	}
	if _, ok := h.steps.find("load frontend " + img); !ok {
		t.Errorf("frontend gateway.v0 did not run %s", img)
	}

	// A daemon that refuses frontend images says where one was asked for.
	h.e.syntax.Disabled = true
	_, err = h.build(t, "# syntax="+img+"\n"+df, Request{})
	if !errors.As(err, &se) || se.Range.Start != 1 || !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "gateway = false") {
		t.Errorf("disabled gateway: %v", err)
	}
	h.e.syntax.Disabled = false

	// A daemon pinning its frontend runs the pinned image whatever the
	// line says.
	h.e.syntax.Pin = img
	if _, err := h.build(t, "# syntax="+host+"/nope:1\n"+df, Request{}); err != nil {
		t.Errorf("pinned syntax: %v", err)
	}
	h.e.syntax.Pin = ""

	// Allowed repositories.
	h.e.syntax.AllowedRepositories = []string{host + "/other"}
	_, err = h.build(t, "# syntax="+img+"\n"+df, Request{})
	if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "allowed") {
		t.Errorf("repository not allowed: %v", err)
	}
	h.e.syntax.AllowedRepositories = nil
}

// A Dockerfile error found by the external frontend keeps its line.
func TestGatewayFrontendError(t *testing.T) {
	h, img := gatewayHarness(t, SyntaxPolicy{})
	_, err := h.build(t, "# syntax="+img+"\nFROM BASE\nFROBNICATE now\n", Request{})
	var se *errdefs.SourceError
	if !errors.As(err, &se) || se.Range.Start != 3 || !strings.Contains(strings.ToLower(err.Error()), "unknown instruction") {
		t.Fatalf("err = %v, want an unknown-instruction error at line 3", err)
	}
	t.Logf("error: %v", err)

	// A step that misses says why, as with the built-in frontend.
	for _, word := range []string{"one", "two"} {
		if _, err := h.build(t, "# syntax="+img+"\nFROM BASE\nRUN echo "+word+" > /w\n", Request{}); err != nil {
			t.Fatal(err)
		}
	}
	st, ok := h.steps.find("RUN echo two")
	if !ok || st.Cached || !strings.Contains(st.MissReason, "command changed") {
		t.Errorf("changed RUN: %+v, want a miss explained as a changed command", st)
	}
}

// Several platforms (a map of results with refs.platforms), named
// contexts and the frontend's lint warnings go through the gateway.
func TestGatewayPlatformsContextsWarnings(t *testing.T) {
	h, img := gatewayHarness(t, SyntaxPolicy{})
	h.write(t, "a.txt", "a\n")
	extra := t.TempDir()
	if err := os.WriteFile(filepath.Join(extra, "x.txt"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.sess.Dirs["context:extra"] = extra
	df := "# syntax=" + img + "\nFROM scratch\nCOPY a.txt /\nCOPY --from=extra x.txt /\nCMD echo not json\n"
	req := Request{
		Dockerfile: []byte(df), DockerfileName: "Dockerfile", ContextPath: h.ctx, HasContext: true, Ref: "multi",
		Platforms:     []string{"linux/amd64", "linux/arm64"},
		NamedContexts: map[string]frontend.NamedContext{"extra": {Local: "context:extra"}},
		Outputs:       []Output{{Type: "image", Attrs: map[string]string{"name": "multi:1"}}},
	}
	h.steps = &stepLog{}
	if _, err := h.e.Build(context.Background(), req, h.sess, h.steps); err != nil {
		t.Fatalf("build: %v", err)
	}
	stored, err := h.e.imageStore.Get(context.Background(), "multi:1")
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	readJSON(t, h, stored.Target.Digest.String(), &idx)
	var plats []string
	for _, m := range idx.Manifests {
		if m.Platform != nil {
			plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
		}
	}
	if d := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, plats); d != "" {
		t.Errorf("index platforms (-want +got):\n%s", d)
	}
	h.steps.mu.Lock()
	warns := strings.Join(h.steps.warns, "\n")
	h.steps.mu.Unlock()
	if !strings.Contains(warns, "JSONArgsRecommended") || !strings.Contains(warns, "Dockerfile:5") {
		t.Errorf("the frontend's lint warning is missing or unplaced: %q", warns)
	}
}

// More of RUN's and COPY's options, built both ways.
func TestGatewayMountsAndCopyOptions(t *testing.T) {
	h, img := gatewayHarness(t, SyntaxPolicy{})
	h.write(t, "src/a/keep.go", "package a\n")
	h.write(t, "src/a/skip.txt", "skip\n")
	h.write(t, "src/b/keep.go", "package b\n")
	h.sess.Secrets = map[string][]byte{"tok": []byte("s3cret")}
	df := `FROM BASE
RUN --mount=type=secret,id=tok,target=/run/secrets/tok,uid=5 test "$(cat /run/secrets/tok)" = s3cret && stat -c %u /run/secrets/tok > /secret-owner
RUN --mount=type=secret,id=tok,env=TOK test "$TOK" = s3cret && echo env > /secret-env
RUN --mount=type=bind,source=src,target=/mnt ls -R /mnt > /bind-listing
RUN --mount=type=bind,source=src,target=/mnt,rw touch /mnt/new && ls /mnt > /rw-listing
RUN --mount=type=tmpfs,target=/scratch,size=1m df -k /scratch | tail -1 | awk '{print $2}' > /tmpfs-size
RUN --network=none (wget -q -T 1 -O - http://127.0.0.1:1 || echo offline) > /net
COPY --parents src/*/keep.go /parents/
COPY --exclude=**/*.txt src/ /excluded/
ADD --chmod=0600 src/a/keep.go /added
`
	want := h.buildTree(t, Request{Dockerfile: []byte(df)})
	got := h.buildTree(t, Request{Dockerfile: []byte("# syntax=" + img + "\n" + df)})
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("files differ (-built-in +gateway):\n%s", d)
	}
	for _, p := range []string{"secret-owner", "secret-env", "bind-listing", "rw-listing", "tmpfs-size", "net", "parents/src/a/keep.go", "excluded/a/keep.go", "added"} {
		if _, ok := got[p]; !ok {
			t.Errorf("%s missing", p)
		}
	}
	if _, ok := got["excluded/a/skip.txt"]; ok {
		t.Error("--exclude did not exclude")
	}
}
