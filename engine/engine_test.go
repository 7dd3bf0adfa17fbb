package engine

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine/history"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/progress"
)

type harness struct {
	e     *Engine
	base  string // FROM reference of the busybox image
	ctx   string // build context directory
	sess  *testutil.Session
	steps *stepLog
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, Options{})
}

// newHarnessWith opens an engine with opts (the root, and unless opts has
// them, the Dockerfile frontend and the exporters filled in) and a
// registry holding busybox.
func newHarnessWith(t *testing.T, opts Options) *harness {
	t.Helper()
	testroot.RequireSlow(t, "runs real builds")
	host := testutil.StartRegistry(t)
	base := host + "/library/busybox:latest"
	testutil.PushImage(t, base, testutil.BusyboxImage(t, testutil.HostPlatform()))
	opts.Root = t.TempDir()
	if opts.Frontends == nil {
		opts.Frontends = map[string]frontend.Frontend{"dockerfile": dockerfile.New()}
	}
	if opts.Exporters == nil {
		opts.Exporters = testExporters()
	}
	e, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	dir := t.TempDir()
	return &harness{e: e, base: base, ctx: dir, steps: &stepLog{},
		sess: &testutil.Session{Ref: "test", Client: "client-1", Dirs: map[string]string{"context": dir}}}
}

// testExporters are the built-in exporters, wired as cmd/kilnd wires them.
func testExporters() map[string]exporter.Factory {
	return map[string]exporter.Factory{
		exporter.TypeImage: exporter.ImageFactory(), exporter.TypeRegistry: exporter.RegistryFactory(),
		exporter.TypeOCI: exporter.OCIFactory(), exporter.TypeDocker: exporter.DockerFactory(),
		exporter.TypeLocal: exporter.LocalFactory(), exporter.TypeTar: exporter.TarFactory(),
	}
}

// stepLog remembers the last status of each named step.
type stepLog struct {
	mu     sync.Mutex
	status map[string]progress.VertexStatus
	logs   strings.Builder
	warns  []string
}

func (l *stepLog) Write(e progress.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.status == nil {
		l.status = map[string]progress.VertexStatus{}
	}
	switch {
	case e.Vertex != nil:
		l.status[e.Vertex.Name] = *e.Vertex
	case e.Log != nil:
		l.logs.Write(e.Log.Data)
	case e.Warning != nil:
		l.warns = append(l.warns, e.Warning.Message)
	}
}

func (l *stepLog) find(prefix string) (progress.VertexStatus, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, st := range l.status {
		if strings.Contains(name, prefix) {
			return st, true
		}
	}
	return progress.VertexStatus{}, false
}

func (h *harness) write(t *testing.T, name, data string) {
	t.Helper()
	p := filepath.Join(h.ctx, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) build(t *testing.T, dockerfile string, req Request) (*Result, error) {
	t.Helper()
	h.steps = &stepLog{}
	req.Dockerfile = []byte(strings.ReplaceAll(dockerfile, "BASE", h.base))
	req.DockerfileName = "Dockerfile"
	req.ContextPath = h.ctx
	req.HasContext = true
	if req.Ref == "" {
		req.Ref = "build"
	}
	return h.e.Build(context.Background(), req, h.sess, h.steps)
}

func TestBuildHello(t *testing.T) {
	h := newHarness(t)
	df := "FROM BASE\nRUN echo \"Hello, Kiln!\" > /hello.txt\nCMD [\"cat\",\"/hello.txt\"]\n"
	res, err := h.build(t, df, Request{Tags: []string{"my-hello-app"}})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if res.Stats.Cached != 0 {
		t.Errorf("cold build: %+v", res.Stats)
	}
	img, err := h.e.imageStore.Get(context.Background(), "my-hello-app")
	if err != nil {
		t.Fatalf("image not stored: %v", err)
	}
	if res.ExporterResponse["containerimage.digest"] != img.Target.Digest.String() {
		t.Errorf("response digest %s, stored %s", res.ExporterResponse["containerimage.digest"], img.Target.Digest)
	}
	// The RUN step's result holds the file.
	st, ok := h.steps.find("RUN echo")
	if !ok || st.Completed == nil || st.Cached {
		t.Fatalf("RUN step status = %+v", st)
	}
	// Its layer (the image's last) holds exactly what the step wrote.
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	readJSON(t, h, img.Target.Digest.String(), &m)
	if len(m.Layers) != 2 {
		t.Fatalf("image has %d layers, want busybox's and the RUN's", len(m.Layers))
	}
	names := layerFiles(t, h, m.Layers[1].Digest)
	if diff := cmp.Diff([]string{"hello.txt"}, names); diff != "" {
		t.Errorf("RUN layer entries (-want +got):\n%s", diff)
	}

	// Again: everything is cached.
	res, err = h.build(t, df, Request{Tags: []string{"my-hello-app"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := h.steps.find("RUN echo"); !st.Cached {
		t.Errorf("second build did not use the cache: %+v (stats %+v)", st, res.Stats)
	}

	// The history service holds both builds; Status replays the one
	// that just ended.
	recs, err := h.e.History().List(context.Background(), history.Filter{Ref: "build"})
	if err != nil || len(recs) != 2 || recs[0].Status != history.StatusCompleted || recs[0].Cached != res.Stats.Cached {
		t.Errorf("history = %+v, %v; want two completed builds, the newest first", recs, err)
	}
	replay := &stepLog{}
	if err := h.e.Status(context.Background(), "build", replay); err != nil {
		t.Fatal(err)
	}
	if st, ok := replay.find("RUN echo"); !ok || !st.Cached {
		t.Errorf("Status replayed %+v, want the cached RUN step", st)
	}
}

func TestBuildCopyCacheKeys(t *testing.T) {
	h := newHarness(t)
	h.write(t, "a.txt", "A")
	h.write(t, "b.txt", "B")
	df := "FROM BASE\nCOPY a.txt /a.txt\nRUN cat /a.txt > /seen\n"
	if _, err := h.build(t, df, Request{}); err != nil {
		t.Fatal(err)
	}
	// b.txt changes, a.txt is touched: nothing re-runs.
	h.write(t, "b.txt", "B2")
	now := mustStat(t, filepath.Join(h.ctx, "a.txt"))
	_ = os.Chtimes(filepath.Join(h.ctx, "a.txt"), now.Add(1e9), now.Add(1e9))
	if _, err := h.build(t, df, Request{}); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.steps.find("COPY a.txt"); !st.Cached {
		t.Errorf("COPY a.txt re-ran after b.txt changed / a.txt was touched: %+v", st)
	}
	// a.txt changes: COPY and RUN re-run, and the progress says why.
	h.write(t, "a.txt", "A2")
	if _, err := h.build(t, df, Request{}); err != nil {
		t.Fatal(err)
	}
	st, _ := h.steps.find("COPY a.txt")
	if st.Cached || st.MissReason != "a.txt changed" {
		t.Errorf("COPY after a.txt changed: cached=%v reason=%q", st.Cached, st.MissReason)
	}
	if st, _ := h.steps.find("RUN cat"); st.Cached {
		t.Errorf("RUN after COPY was cached")
	}
}

func TestBuildFailureNamesStep(t *testing.T) {
	h := newHarness(t)
	_, err := h.build(t, "FROM BASE\nRUN echo ok\nRUN exit 3\n", Request{})
	if err == nil {
		t.Fatal("build succeeded")
	}
	for _, want := range []string{"Dockerfile:3", "RUN exit 3", `"/bin/sh -c exit 3" did not complete successfully: exit code: 3`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Nothing of the failed step was recorded; the earlier one was.
	var descs []string
	_ = h.e.cacheStore.Walk(context.Background(), func(r cache.Record) error {
		descs = append(descs, r.Description)
		return nil
	})
	joined := strings.Join(descs, "\n")
	if strings.Contains(joined, "exit 3") || !strings.Contains(joined, "RUN echo ok") {
		t.Errorf("cache records after a failed build: %q", joined)
	}
}

func mustStat(t *testing.T, p string) time.Time {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.ModTime()
}

func TestEntitlements(t *testing.T) {
	h := newHarness(t)
	_, err := h.build(t, "FROM BASE\nRUN --security=insecure true\n", Request{})
	if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "--allow security.insecure") {
		t.Errorf("insecure without --allow: %v", err)
	}
	_, err = h.build(t, "FROM BASE\nRUN --security=insecure true\n", Request{Entitlements: []string{EntitlementSecurityInsecure}})
	if err == nil || !strings.Contains(err.Error(), "insecure-entitlements") {
		t.Errorf("insecure not granted by the daemon: %v", err)
	}
}

func TestImageConfig(t *testing.T) {
	h := newHarness(t)
	df := "FROM BASE\nENV A=1\nWORKDIR /app\nCMD [\"cat\",\"/hello.txt\"]\n"
	if _, err := h.build(t, df, Request{Tags: []string{"cfg"}}); err != nil {
		t.Fatal(err)
	}
	img, err := h.e.imageStore.Get(context.Background(), "cfg")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Config struct{ Digest string } `json:"config"`
	}
	readJSON(t, h, img.Target.Digest.String(), &m)
	var cfg struct {
		Config struct {
			Env        []string
			Cmd        []string
			WorkingDir string
		} `json:"config"`
		History []struct {
			CreatedBy  string `json:"created_by"`
			EmptyLayer bool   `json:"empty_layer"`
		} `json:"history"`
	}
	readJSON(t, h, m.Config.Digest, &cfg)
	if cfg.Config.WorkingDir != "/app" || strings.Join(cfg.Config.Cmd, " ") != "cat /hello.txt" {
		t.Errorf("config = %+v", cfg.Config)
	}
	if len(cfg.History) < 4 {
		t.Errorf("history = %+v", cfg.History)
	}
}

func readJSON(t *testing.T, h *harness, dgst string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.e.root, "content", "blobs", "sha256", strings.TrimPrefix(dgst, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestNoChangeRebuildKeepsDigest(t *testing.T) {
	h := newHarness(t)
	df := "FROM BASE\nRUN echo hi > /x\nHEALTHCHECK --interval=5s CMD true\nSHELL [\"/bin/sh\", \"-ec\"]\n"
	first, err := h.build(t, df, Request{Tags: []string{"same"}})
	if err != nil {
		t.Fatal(err)
	}
	second, err := h.build(t, df, Request{Tags: []string{"same"}})
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := first.ExporterResponse["containerimage.digest"], second.ExporterResponse["containerimage.digest"]
	if d1 == "" || d1 != d2 {
		t.Errorf("a fully cached rebuild changed the image digest: %s → %s", d1, d2)
	}
	var cfg struct {
		Config struct {
			Healthcheck *struct{ Test []string }
			Shell       []string
		} `json:"config"`
	}
	readJSON(t, h, second.ExporterResponse["containerimage.config.digest"], &cfg)
	if cfg.Config.Healthcheck == nil || strings.Join(cfg.Config.Shell, " ") != "/bin/sh -ec" {
		t.Errorf("Docker config fields lost: %+v", cfg.Config)
	}
}

func TestMultiPlatformBuild(t *testing.T) {
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err != nil {
		t.Skip("no QEMU binfmt handler for arm64 (hack/test.sh registers one)")
	}
	h := newHarness(t)
	if _, err := testutil.BusyboxBinary("arm64"); err != nil {
		t.Skipf("no arm64 busybox: %v", err)
	}
	testutil.PushIndex(t, h.base, testutil.BusyboxIndex(t))
	df := "FROM BASE\nARG TARGETARCH\nRUN echo $TARGETARCH $(uname -m) > /arch\n"
	var buf strings.Builder
	_, err := h.build(t, df, Request{
		Platforms: []string{"linux/amd64,linux/arm64"},
		Tags:      []string{"multi"},
		Outputs: []Output{{Type: "tar", Attrs: map[string]string{"dest": "x"}, Writer: func() (io.WriteCloser, error) {
			return nopWriteCloser{&buf}, nil
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tarText := buf.String()
	for _, want := range []string{"linux_amd64/arch", "linux_arm64/arch", "amd64 x86_64", "arm64 aarch64"} {
		if !strings.Contains(tarText, want) {
			t.Errorf("multi-platform tar lacks %q", want)
		}
	}
	img, err := h.e.imageStore.Get(context.Background(), "multi")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(img.Target.MediaType, "index") {
		t.Errorf("stored image is %s, want an index", img.Target.MediaType)
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// layerFiles lists the regular files of a gzip layer blob.
func layerFiles(t *testing.T, h *harness, dgst string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(h.e.root, "content", "blobs", "sha256", strings.TrimPrefix(dgst, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			names = append(names, hdr.Name)
		}
	}
	return names
}
