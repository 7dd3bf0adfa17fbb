package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/internal/testutil"
)

// multiPlatformLayout writes an OCI layout tarball of an index with the
// busybox fixture for the host and a second platform (the same layer under
// another config: it is stored and saved, never run), named multi:latest.
func multiPlatformLayout(t *testing.T) string {
	t.Helper()
	host := testutil.BusyboxImage(t, testutil.HostPlatform())
	other := v1.Platform{OS: "linux", Architecture: "riscv64"}
	cf, err := host.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = other.Architecture
	second, err := mutate.ConfigFile(host, cf)
	if err != nil {
		t.Fatal(err)
	}
	hp := testutil.HostPlatform()
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: host, Descriptor: v1.Descriptor{Platform: &hp}},
		mutate.IndexAddendum{Add: second, Descriptor: v1.Descriptor{Platform: &other}},
	)
	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"io.containerd.image.name": "docker.io/library/multi:latest"})); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "multi.tar")
	tarDir(t, filepath.Join(dir, "layout"), file)
	return file
}

// tarDir writes the files under dir to a tarball.
func tarDir(t *testing.T, dir, file string) {
	t.Helper()
	if err := writeTarball(file, dir, nil); err != nil {
		t.Fatal(err)
	}
}

func TestMultiPlatformImage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	file := multiPlatformLayout(t)
	if r := e.ok("image", "import", file); !strings.Contains(r.stdout, "Loaded image: multi:latest") {
		t.Fatalf("import: %s", r)
	}
	host := testutil.HostPlatform().String()

	r := e.ok("image", "ls", "--format", "{{.Name}} {{.Platforms}}")
	if want := "multi:latest [" + host + " linux/riscv64]\n"; r.stdout != want {
		t.Errorf("image ls = %q, want %q", r.stdout, want)
	}
	r = e.ok("image", "inspect", "multi")
	var got []struct {
		Index     struct{ Manifests []any }
		Manifests []struct {
			Platform string
			Config   struct{ Architecture string }
		}
		Manifest json.RawMessage
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("inspect: %v\n%s", err, r.stdout)
	}
	if len(got) != 1 || len(got[0].Index.Manifests) != 2 || len(got[0].Manifests) != 2 || got[0].Manifest != nil ||
		got[0].Manifests[1].Platform != "linux/riscv64" || got[0].Manifests[1].Config.Architecture != "riscv64" {
		t.Errorf("inspect multi: %s", r.stdout)
	}

	// The host's platform runs.
	if r := e.ok("run", "multi", "echo", "ok"); r.stdout != "ok\n" {
		t.Errorf("run multi: %s", r)
	}

	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.tar")
	e.ok("image", "save", "multi", "-o", whole)
	untar(t, whole, filepath.Join(dir, "whole"))
	idx, err := layout.ImageIndexFromPath(filepath.Join(dir, "whole"))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json: %+v", im.Manifests)
	}
	inner, err := idx.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(inner); err != nil {
		t.Errorf("saved index: %v", err)
	}

	one := filepath.Join(dir, "one.tar")
	e.ok("image", "save", "--platform", "linux/riscv64", "multi", "-o", one)
	untar(t, one, filepath.Join(dir, "one"))
	idx, err = layout.ImageIndexFromPath(filepath.Join(dir, "one"))
	if err != nil {
		t.Fatal(err)
	}
	im, _ = idx.IndexManifest()
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatalf("--platform save holds no single image: %v", err)
	}
	cf, _ := img.ConfigFile()
	if err := validate.Image(img); err != nil || cf.Architecture != "riscv64" {
		t.Errorf("--platform linux/riscv64 save: arch %q, %v", cf.Architecture, err)
	}
	e.fails(1, "no linux/s390x image of it is in kilnd's store (it has "+host+", linux/riscv64)", "image", "save", "--platform", "linux/s390x", "multi", "-o", filepath.Join(dir, "x.tar"))
}
