package engine

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/llbbuild"

	"github.com/kiln-build/kiln/internal/testutil"
)

// entry is one file of an output tree, without its mtime (steps that ran
// at different times write different ones).
type entry struct {
	Type     byte
	Mode     int64
	UID, GID int
	Link     string
	Sum      string
}

// treeOutput collects a type=tar output's entries into files.
func treeOutput(mu *sync.Mutex, files map[string]entry) Output {
	return tarEntries(func(h *tar.Header, b []byte) {
		sum := sha256.Sum256(b)
		mu.Lock()
		files[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = entry{Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid, Link: h.Linkname, Sum: hex.EncodeToString(sum[:4])}
		mu.Unlock()
	})
}

// buildTree builds req and returns the result's file tree.
func (h *harness) buildTree(t *testing.T, req Request) map[string]entry {
	t.Helper()
	var mu sync.Mutex
	files := map[string]entry{}
	req.Outputs = []Output{treeOutput(&mu, files)}
	req.ContextPath, req.HasContext = h.ctx, true
	if req.Ref == "" {
		req.Ref = "build"
	}
	h.steps = &stepLog{}
	if req.Definition == nil {
		req.Dockerfile = []byte(strings.ReplaceAll(string(req.Dockerfile), "BASE", h.base))
		req.DockerfileName = "Dockerfile"
	}
	if _, err := h.e.Build(context.Background(), req, h.sess, h.steps); err != nil {
		t.Fatalf("build: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// A hard link is the file it links to: Kiln's COPY fast path links
	// context files into snapshots, which the tar shows as links.
	out := map[string]entry{}
	for k, v := range files {
		if v.Type == tar.TypeLink {
			v = files[strings.TrimPrefix(v.Link, "./")]
		}
		out[k] = v
	}
	return out
}

func marshalLLB(t *testing.T, st bk.State) Request {
	t.Helper()
	def, err := st.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return Request{Definition: def.ToPB()}
}

// An LLB definition written with BuildKit's client gives the same
// filesystem as the Dockerfile that says the same, and is cached the
// second time.
func TestLLBMatchesDockerfile(t *testing.T) {
	h := newHarness(t)
	h.write(t, "a.txt", "a\n")
	h.write(t, "dir/b.txt", "b\n")
	h.write(t, "dir/old.txt", "old\n")
	h.write(t, "arch.tar", string(testutil.TarArchive("inner.txt", "inside\n")))
	if err := os.Symlink("a.txt", filepath.Join(h.ctx, "alink")); err != nil {
		t.Fatal(err)
	}

	df := `FROM BASE AS lib
RUN mkdir -p /out && echo lib > /out/lib.txt && chown 1:1 /out/lib.txt
FROM BASE
COPY a.txt dir/ /app/
COPY --from=lib --chown=2:3 /out/ /lib/
COPY --chmod=0700 a.txt /bin-a
COPY alink /followed
RUN --mount=type=cache,target=/cache,id=llbtest echo 2 > /cache/x && cp /cache/x /app/cached
WORKDIR /work
RUN ln -s /app/a.txt /work/link && rm /app/old.txt
ADD arch.tar /unpacked/
`
	want := h.buildTree(t, Request{Dockerfile: []byte(df)})

	sh := func(cmd string) bk.RunOption { return bk.Args([]string{"/bin/sh", "-c", cmd}) }
	copyOpts := func() *bk.CopyInfo {
		return &bk.CopyInfo{FollowSymlinks: true, CopyDirContentsOnly: true, CreateDestPath: true, AllowWildcard: true, AllowEmptyWildcard: true}
	}
	env := bk.AddEnv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	base := bk.Image(h.base)
	local := bk.Local("context")
	lib := base.Run(sh("mkdir -p /out && echo lib > /out/lib.txt && chown 1:1 /out/lib.txt"), env).Root()
	chmod := copyOpts()
	chmod.Mode = &bk.ChmodOpt{Mode: 0o700}
	st := base.File(bk.Copy(local, "/a.txt", "/app/", copyOpts()).
		Copy(local, "/dir", "/app/", copyOpts()))
	st = st.File(bk.Copy(lib, "/out/", "/lib/", copyOpts(), bk.WithUIDGID(2, 3)))
	st = st.File(bk.Copy(local, "/a.txt", "/bin-a", chmod))
	st = st.File(bk.Copy(local, "/alink", "/followed", copyOpts()))
	st = st.Run(sh("echo 2 > /cache/x && cp /cache/x /app/cached"), env,
		bk.AddMount("/cache", bk.Scratch(), bk.AsPersistentCacheDir("llbtest", bk.CacheMountShared))).Root()
	st = st.File(bk.Mkdir("/work", 0o755, bk.WithParents(true))).Dir("/work")
	st = st.Run(sh("ln -s /app/a.txt /work/link && rm /app/old.txt"), env).Root()
	add := copyOpts()
	add.AttemptUnpack = true
	st = st.File(bk.Copy(local, "/arch.tar", "/unpacked/", add))

	req := marshalLLB(t, st)
	got := h.buildTree(t, req)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LLB result differs from the Dockerfile's (-Dockerfile +LLB):\n%s", diff)
	}
	for _, p := range []string{"app/a.txt", "app/b.txt", "lib/lib.txt", "bin-a", "followed", "app/cached", "work/link", "unpacked/inner.txt"} {
		if _, ok := got[p]; !ok {
			t.Errorf("%s missing from the result", p)
		}
	}
	if e := got["lib/lib.txt"]; e.UID != 2 || e.GID != 3 {
		t.Errorf("lib/lib.txt owned by %d:%d, want 2:3", e.UID, e.GID)
	}

	// The same definition again: every step is a cache hit.
	again := h.buildTree(t, req)
	if diff := cmp.Diff(got, again); diff != "" {
		t.Errorf("rebuild differs:\n%s", diff)
	}
	h.steps.mu.Lock()
	for name, s := range h.steps.status {
		if strings.Contains(name, "/bin/sh -c") && !s.Cached {
			t.Errorf("step %q ran again", name)
		}
	}
	h.steps.mu.Unlock()
}

// Merge, diff and exec mount outputs run as LLB defines them.
func TestLLBMergeDiffOutputs(t *testing.T) {
	h := newHarness(t)
	sh := func(cmd string) bk.RunOption { return bk.Args([]string{"/bin/sh", "-c", cmd}) }
	base := bk.Image(h.base)
	upper := base.Run(sh("mkdir -p /new && echo n > /new/n && echo changed > /etc/motd")).Root()
	diff := bk.Diff(base, upper)
	onScratch := h.buildTree(t, marshalLLB(t, diff))
	var names []string
	for n := range onScratch {
		names = append(names, n)
	}
	sort.Strings(names)
	if d := cmp.Diff([]string{"etc", "etc/motd", "new", "new/n"}, names); d != "" {
		t.Errorf("diff tree (-want +got):\n%s", d)
	}

	run := base.Run(sh("echo o > /out/f && echo r > /rootfile"))
	out := run.AddMount("/out", bk.Scratch())
	merged := bk.Merge([]bk.State{bk.Scratch().File(bk.Mkfile("/m", 0o600, []byte("m"))), out})
	tree := h.buildTree(t, marshalLLB(t, merged))
	names = names[:0]
	for n := range tree {
		names = append(names, n)
	}
	sort.Strings(names)
	if d := cmp.Diff([]string{"f", "m"}, names); d != "" {
		t.Errorf("merge of a file and an exec's mount output (-want +got):\n%s", d)
	}
	if e := tree["m"]; e.Mode&0o777 != 0o600 {
		t.Errorf("m has mode %o", e.Mode)
	}

	// A diff whose upper removes a path is refused, naming the path.
	rm := base.Run(sh("rm /etc/motd || rm /etc/passwd")).Root()
	req := marshalLLB(t, bk.Merge([]bk.State{base, bk.Diff(base, rm)}))
	req.Ref = "rm"
	_, err := h.e.Build(context.Background(), req, h.sess, &stepLog{})
	if err == nil || !strings.Contains(err.Error(), "removes /etc/") {
		t.Errorf("diff with a removal: %v", err)
	}
}

// A definition that Kiln cannot run is refused before anything runs.
func TestLLBUnsupported(t *testing.T) {
	h := newHarness(t)
	st := bk.Image(h.base).Run(bk.Shlex("true"), bk.AddUlimit(bk.UlimitNofile, 1, 1)).Root()
	_, err := h.e.Build(context.Background(), marshalLLB(t, st), h.sess, &stepLog{})
	if err == nil || !strings.Contains(err.Error(), "ulimit") {
		t.Fatalf("err = %v, want the ulimit named", err)
	}
}

// An exec's hostname, valid exit codes and read-only root reach the step.
func TestLLBExecOptions(t *testing.T) {
	h := newHarness(t)
	sh := func(cmd string) bk.RunOption { return bk.Args([]string{"/bin/sh", "-c", cmd}) }
	base := bk.Image(h.base)
	st := base.Run(sh("hostname > /h; exit 3"), bk.Hostname("llbhost"), bk.ValidExitCodes(3)).Root()
	ro := st.Run(sh("(touch /x 2>/dev/null && echo writable || echo readonly) > /out/r"), bk.ReadonlyRootFS())
	out := ro.AddMount("/out", st)
	req := marshalLLB(t, out)
	files := map[string]string{}
	req.Outputs = []Output{tarOutput(files)}
	req.Ref = "execopts"
	if _, err := h.e.Build(context.Background(), req, h.sess, &stepLog{}); err != nil {
		t.Fatalf("build: %v", err)
	}
	if files["h"] != "llbhost\n" || files["r"] != "readonly\n" {
		t.Errorf("h = %q, r = %q", files["h"], files["r"])
	}

	// Exit code 0 is not valid when the list leaves it out.
	req = marshalLLB(t, base.Run(sh("true"), bk.ValidExitCodes(1)).Root())
	req.Ref = "exit0"
	if _, err := h.e.Build(context.Background(), req, h.sess, &stepLog{}); err == nil || !strings.Contains(err.Error(), "valid exit codes [1]") {
		t.Errorf("exit 0 with valid codes [1]: %v", err)
	}
}

// A build op (BuildKit's llbbuild) reads its definition from another
// step's result, through the build's bridge.
func TestLLBBuildOp(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	inner, err := bk.Image(h.base).Run(bk.Args([]string{"/bin/sh", "-c", "echo inner > /inner"})).Root().Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := inner.ToPB().MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	st := bk.Scratch().File(bk.Mkfile("/buildkit.llb.definition", 0o644, dt)).With(llbbuild.Build())
	req := marshalLLB(t, st)
	files := map[string]string{}
	req.Outputs, req.Ref = []Output{tarOutput(files)}, "buildop"
	if _, err := h.e.Build(ctx, req, h.sess, &stepLog{}); err != nil {
		t.Fatalf("build: %v", err)
	}
	if files["inner"] != "inner\n" {
		t.Errorf("inner = %q", files["inner"])
	}
}
