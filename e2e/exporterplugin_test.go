package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestExporterPlugin: a kilnd configured with [[exporter.plugin]] entries
// hands `kiln build -o type=NAME,...` results to the plugin program as an
// OCI layout (issue 15 item 3). The example plugin stores a valid layout
// of the built image and its response reaches --metadata-file; a failing
// plugin fails the build naming it and its stderr, and the next build
// works from the cache.
func TestExporterPlugin(t *testing.T) {
	_, _ = binaries(t)
	bin := filepath.Join(t.TempDir(), "exporter-plugin")
	if err := testutil.GoBuild(bin, "github.com/kiln-build/kiln/examples/exporter-plugin"); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\ncat >/dev/null\necho 'upload to s3://nowhere: access denied' >&2\nexit 4\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("[[exporter.plugin]]\nname = \"archive\"\ncommand = [%q]\n\n[[exporter.plugin]]\nname = \"broken\"\ncommand = [%q]\n", bin, broken)
	e := newEnv(t, testutil.WithDaemonConfig(cfg))
	e.importBusybox()
	ctx := e.helloContext()
	out := t.TempDir()

	dest := filepath.Join(out, "app")
	meta := filepath.Join(out, "meta.json")
	r := e.ok("build", "--progress", "plain", "--metadata-file", meta, "-o", "type=archive,dest="+dest+",name=hello:1", ctx)
	if !strings.Contains(r.stderr, "exporting to archive") {
		t.Errorf("progress does not show the plugin's step:\n%s", r.stderr)
	}
	var md map[string]any
	data, err := os.ReadFile(meta)
	if err != nil || json.Unmarshal(data, &md) != nil {
		t.Fatalf("metadata file %q: %v", data, err)
	}
	if md["location"] != dest {
		t.Errorf("metadata %s: want the plugin's location %s", data, dest)
	}
	idx, err := layout.ImageIndexFromPath(dest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != md["containerimage.digest"] {
		t.Fatalf("index.json %+v: want the built manifest %v", im.Manifests, md["containerimage.digest"])
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Error(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cf.Config.Cmd, " ") != "cat hello.txt" || cf.Config.WorkingDir != "/app" {
		t.Errorf("image config %+v: want the hello app's CMD and WORKDIR", cf.Config)
	}
	nonEmpty := 0
	for _, h := range cf.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if ls, err := img.Layers(); err != nil || len(ls) < 3 || len(ls) != nonEmpty {
		t.Errorf("%d layers (%v), want busybox's and the build's (%d history entries with a layer)", len(ls), err, nonEmpty)
	}

	// A failing plugin fails the build with its name and its stderr.
	r = e.fails(1, "exporter plugin broken ("+broken+") failed: exit status 4", "build", "--progress", "plain", "-o", "type=broken", ctx)
	if !strings.Contains(r.stderr, "upload to s3://nowhere: access denied") {
		t.Errorf("the error does not carry the plugin's stderr:\n%s", r.stderr)
	}
	// The plugin's own refusal (an attribute it does not know) is the
	// build's error too.
	e.fails(1, `unknown attribute "compress"`, "build", "-o", "type=archive,dest="+filepath.Join(out, "x")+",compress=yes", ctx)

	// The next build works, from the cache, and the store is whole.
	dest2 := filepath.Join(out, "app.tar")
	r = e.ok("build", "--progress", "plain", "-o", "type=archive,dest="+dest2, ctx)
	if !strings.Contains(r.stderr, "CACHED") {
		t.Errorf("the build after the failed exports did not use the cache:\n%s", r.stderr)
	}
	if fi, err := os.Stat(dest2); err != nil || fi.Size() == 0 {
		t.Errorf("%s: %v", dest2, err)
	}
	e.ok("build", "-t", "hello:2", ctx)
	e.ok("image", "ls")
}
