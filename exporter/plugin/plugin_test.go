package plugin

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/snapshot"
)

// examplePlugin builds examples/exporter-plugin once per test binary.
var examplePlugin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "kiln-exporter-plugin-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "exporter-plugin")
	return out, testutil.GoBuild(out, "github.com/kiln-build/kiln/examples/exporter-plugin")
})

// fixture is a result to export: one committed snapshot holding a
// 256 KiB file (more than a pipe buffer holds), with a layer maker over
// a fresh content store and snapshotter.
type fixture struct {
	deps   exporter.Deps
	result exporter.Result
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	testroot.Require(t, "mounts snapshots")
	ctx := context.Background()
	root := t.TempDir()
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.New(root, snapshot.KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sn.Close() })
	if _, err := sn.Prepare(ctx, "build-1", ""); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 256<<10)
	_, _ = rand.Read(data)
	err = snapshot.WithActive(ctx, sn, "build-1", func(dir string) error {
		return os.WriteFile(filepath.Join(dir, "data.bin"), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "kiln-r-1", "build-1"); err != nil {
		t.Fatal(err)
	}
	p := testutil.HostPlatform()
	img := exporter.Image{
		Platform: ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant},
		Ref:      ref("kiln-r-1"),
		Config: ocispec.Image{
			Platform: ocispec.Platform{OS: p.OS, Architecture: p.Architecture},
			History:  []ocispec.History{{CreatedBy: "COPY data.bin /"}},
		},
	}
	return &fixture{
		deps:   exporter.Deps{Layers: layer.NewMaker(cs, sn)},
		result: exporter.Result{Images: []exporter.Image{img}},
	}
}

type ref string

func (r ref) ID() string                    { return string(r) }
func (r ref) Release(context.Context) error { return nil }

// script writes an executable test plugin.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "plugin.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// events records progress.
type events struct {
	mu  sync.Mutex
	all []progress.Event
}

func (e *events) Write(ev progress.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) logs() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, ev := range e.all {
		if ev.Log != nil {
			b.Write(ev.Log.Data)
		}
	}
	return b.String()
}

func export(t *testing.T, ctx context.Context, f *fixture, o Options, attrs map[string]string) (exporter.Response, *events, error) {
	t.Helper()
	ex, err := Factory(o).New(attrs, f.deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ev := &events{}
	resp, err := ex.Export(progress.WithWriter(ctx, ev), f.result)
	return resp, ev, err
}

func TestExamplePlugin(t *testing.T) {
	f := newFixture(t)
	bin, err := examplePlugin()
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "app")
	resp, ev, err := export(t, context.Background(), f, Options{Name: "archive", Command: []string{bin}}, map[string]string{"dest": dest, "name": "example.com/app:1"})
	if err != nil {
		t.Fatalf("export: %v\nprogress logs: %s", err, ev.logs())
	}
	if resp["location"] != dest {
		t.Errorf("response %v: want location %s from the plugin", resp, dest)
	}
	idx, err := layout.ImageIndexFromPath(dest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != resp[exporter.KeyDigest] {
		t.Fatalf("index.json %+v: want one manifest, %s", im.Manifests, resp[exporter.KeyDigest])
	}
	if got := im.Manifests[0].Annotations[ocispec.AnnotationRefName]; got != "1" {
		t.Errorf("ref name annotation %q, want 1 (from name=)", got)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Error(err)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers %d (%v), want 1", len(ls), err)
	}
	var started bool
	for _, e := range ev.all {
		started = started || (e.Vertex != nil && e.Vertex.Name == "exporting to archive")
	}
	if !started {
		t.Error("no progress step \"exporting to archive\"")
	}
}

// TestLayoutAttributes: kilnd applies type=oci's layout attributes to the
// stream and still passes them to the plugin (the example accepts them).
func TestLayoutAttributes(t *testing.T) {
	f := newFixture(t)
	bin, err := examplePlugin()
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "app")
	_, ev, err := export(t, context.Background(), f, Options{Name: "archive", Command: []string{bin}},
		map[string]string{"dest": dest, "compression": "zstd", "annotation.org.example.team": "build"})
	if err != nil {
		t.Fatalf("export: %v\nprogress logs: %s", err, ev.logs())
	}
	idx, err := layout.ImageIndexFromPath(dest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("index.json %+v (%v): want one manifest", im, err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Annotations["org.example.team"]; got != "build" {
		t.Errorf("manifest annotations %v: want org.example.team=build", m.Annotations)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != ocispec.MediaTypeImageLayerZstd {
		t.Errorf("layers %+v: want one zstd layer", m.Layers)
	}

	// A bad layout attribute fails before the build, naming the type.
	_, err = Factory(Options{Name: "archive", Command: []string{bin}}).New(map[string]string{"compression": "lz4"}, f.deps)
	if err == nil || !strings.HasPrefix(err.Error(), "type=archive: compression=lz4") {
		t.Errorf("error %v, want one about type=archive compression=lz4", err)
	}
}

func TestEnvironment(t *testing.T) {
	f := newFixture(t)
	t.Setenv("KILN_TEST_LEAK", "daemon secret")
	out := filepath.Join(t.TempDir(), "env")
	bin := script(t, `cat >/dev/null; env > "$OUT"; echo '{"n":"1","containerimage.digest":"sha256:forged"}'`)
	resp, _, err := export(t, context.Background(), f,
		Options{Name: "p", Command: []string{bin}, Env: []string{"OUT=" + out, "PATH=/usr/bin:/bin"}},
		map[string]string{"dest": "/x", "s3.bucket": "1", "s3-bucket": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if resp["n"] != "1" || resp[exporter.KeyDigest] == "sha256:forged" || resp[exporter.KeyDigest] == "" {
		t.Errorf("response %v: want the plugin's n=1 and kilnd's own digest", resp)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := string(data)
	for _, want := range []string{
		"KILN_EXPORTER_VERSION=1\n",
		"KILN_EXPORTER_NAME=p\n",
		`KILN_EXPORTER_ATTRS={"dest":"/x","s3-bucket":"2","s3.bucket":"1"}` + "\n",
		"KILN_EXPORTER_ATTR_DEST=/x\n",
		"PATH=/usr/bin:/bin\n",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("plugin environment lacks %q:\n%s", want, env)
		}
	}
	for _, bad := range []string{"KILN_TEST_LEAK", "KILN_EXPORTER_ATTR_S3_BUCKET", "HOME="} {
		if strings.Contains(env, bad) {
			t.Errorf("plugin environment has %s:\n%s", bad, env)
		}
	}
}

func TestFailures(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		body    string
		timeout time.Duration
		want    string
		log     string // in the progress logs
	}{
		{
			name: "non-zero exit",
			body: `cat >/dev/null; echo starting >&2; echo "bucket not found: s3://nope" >&2; exit 3`,
			want: "exporter plugin p (PLUGIN) failed: exit status 3; its stderr ends:\nstarting\nbucket not found: s3://nope",
			log:  "bucket not found",
		},
		{
			name: "exit before reading",
			body: `echo "unknown attribute x" >&2; exit 2`,
			want: "exporter plugin p (PLUGIN) failed: exit status 2; its stderr ends:\nunknown attribute x",
		},
		{
			name: "success before reading",
			body: `exec 0<&-; sleep 1; exit 0`,
			want: "exporter plugin p exited before reading the whole image layout from its standard input",
		},
		{
			name: "response that is not JSON",
			body: `cat >/dev/null; echo done`,
			want: "exporter plugin p: its standard output is not a JSON object of strings",
		},
		{
			name:    "timeout",
			body:    `sleep 60`,
			timeout: 500 * time.Millisecond,
			want:    "exporter plugin p: timed out after 500ms ([[exporter.plugin]] timeout)",
		},
		{
			name: "program missing",
			want: "exporter plugin p: start /nonexistent/plugin:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := "/nonexistent/plugin"
			if tt.body != "" {
				bin = script(t, tt.body)
			}
			_, ev, err := export(t, context.Background(), f, Options{Name: "p", Command: []string{bin}, Timeout: tt.timeout}, map[string]string{})
			want := strings.ReplaceAll(tt.want, "PLUGIN", bin)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error:\n%v\nwant one starting with:\n%s", err, want)
			}
			if !strings.Contains(ev.logs(), tt.log) {
				t.Errorf("progress logs %q lack %q", ev.logs(), tt.log)
			}
		})
	}
}

// TestCancelKillsProcessGroup cancels an export whose plugin started a
// child of its own: both are gone when Export returns.
func TestCancelKillsProcessGroup(t *testing.T) {
	f := newFixture(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	bin := script(t, `sleep 120 & echo $! > "$OUT"; cat >/dev/null; wait`)
	ctx, cancel := context.WithCancelCause(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := export(t, ctx, f, Options{Name: "p", Command: []string{bin}, Env: []string{"OUT=" + pidFile}}, map[string]string{})
		errc <- err
	}()
	var pid int
	for pid == 0 {
		data, _ := os.ReadFile(pidFile)
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && n > 0 {
			pid = n
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("export ended before it was cancelled: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop := errors.New("build cancelled by the test")
	cancel(stop)
	if err := <-errc; !errors.Is(err, stop) {
		t.Fatalf("error %v, want the cancel cause", err)
	}
	// The child was killed with its group (init reaps it).
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if state, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(state), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the plugin's child %d still runs after the export was cancelled", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewRefusesBadNames(t *testing.T) {
	_, err := New(Options{Name: "p", Command: []string{"/bin/true"}}, map[string]string{"name": "UPPER CASE:tag"}, exporter.Deps{Layers: &layer.Maker{}})
	if err == nil || !strings.HasPrefix(err.Error(), "type=p: ") {
		t.Fatalf("error %v, want a type=p error about the name", err)
	}
}

func TestAttrVar(t *testing.T) {
	for in, want := range map[string]string{
		"dest":                   "KILN_EXPORTER_ATTR_DEST",
		"annotation.org.x":       "KILN_EXPORTER_ATTR_ANNOTATION_ORG_X",
		"compression-level":      "KILN_EXPORTER_ATTR_COMPRESSION_LEVEL",
		"annotation-index.a/b=c": "KILN_EXPORTER_ATTR_ANNOTATION_INDEX_A_B_C",
	} {
		t.Run(in, func(t *testing.T) {
			if got := AttrVar(in); got != want {
				t.Errorf("AttrVar(%q) = %q, want %q", in, got, want)
			}
		})
	}
}
