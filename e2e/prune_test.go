package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
)

// usage runs kiln du --format json and counts records and bytes per type.
func (e *env) usage() (counts map[string]int, sizes map[string]int64) {
	e.t.Helper()
	r := e.ok("du", "--format", "json")
	counts, sizes = map[string]int{}, map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var rec struct {
			Type string `json:"type"`
			Size string `json:"size"` // protojson writes int64 as a string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			e.t.Fatalf("du line %q: %v", line, err)
		}
		counts[rec.Type]++
		var n int64
		if err := json.Unmarshal([]byte(rec.Size), &n); err != nil {
			e.t.Fatalf("du line %q: size: %v", line, err)
		}
		sizes[rec.Type] += n
	}
	return counts, sizes
}

// TestDiskUsageAndPrune builds, prunes, and checks that the store's
// images survive every prune.
func TestDiskUsageAndPrune(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.importBusybox()
	e.buildHello("my-hello-app")

	counts, sizes := e.usage()
	if counts["regular"] < 3 || sizes["regular"] <= 0 || counts["blob"] < 6 || counts["source.local"] != 1 {
		t.Fatalf("du after a build: counts %v sizes %v", counts, sizes)
	}
	r := e.ok("du")
	for _, want := range []string{"TYPE", "cache records", "snapshots", "blobs", "cache mounts", "contexts", "Total"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("kiln du lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := e.ok("du", "--verbose"); !strings.Contains(r.stdout, "RUN echo") || !strings.Contains(r.stdout, "DESCRIPTION") {
		t.Errorf("kiln du --verbose lists no RUN record:\n%s", r.stdout)
	}

	// Not confirmed: nothing happens.
	r = e.run([]byte("n\n"), "prune")
	if r.code != 1 || !strings.Contains(r.stderr, "prune canceled") {
		t.Errorf("prune answered n: %s", r)
	}
	if c, _ := e.usage(); c["regular"] != counts["regular"] {
		t.Errorf("an unconfirmed prune removed records: %v → %v", counts, c)
	}

	// A recent cache stays with --keep-duration.
	r = e.ok("prune", "-f", "--keep-duration", "1h")
	if c, _ := e.usage(); c["regular"] != counts["regular"] {
		t.Errorf("prune --keep-duration 1h removed records: %v → %v\n%s", counts, c, r)
	}

	// The default prune keeps the base image's record and every image.
	r = e.ok("prune", "-f", "--verbose")
	if !strings.Contains(r.stdout, "Total reclaimed:") || !strings.Contains(r.stdout, "cache record") {
		t.Errorf("prune output:\n%s", r.stdout)
	}
	after, _ := e.usage()
	if after["regular"] != 1 || after["source.local"] != 0 {
		t.Errorf("after prune: %v; want the base image's record only and no contexts", after)
	}
	if r := e.ok("run", "my-hello-app"); r.stdout != "Hello, Kiln!\n" {
		t.Errorf("run after prune: %s", r)
	}

	// --all removes every record; the images still run, and a rebuild works.
	e.ok("prune", "-f", "--all")
	after, _ = e.usage()
	if after["regular"] != 0 {
		t.Errorf("after prune --all: %v", after)
	}
	if r := e.ok("run", "my-hello-app"); r.stdout != "Hello, Kiln!\n" {
		t.Errorf("run after prune --all: %s", r)
	}
	e.buildHello("my-hello-app")
	if r := e.ok("run", "my-hello-app"); r.stdout != "Hello, Kiln!\n" {
		t.Errorf("run after rebuild: %s", r)
	}

	// Removing the image frees its blobs at the next prune.
	blobsBefore, _ := e.usage()
	e.ok("image", "rm", "my-hello-app")
	e.ok("prune", "-f", "--all")
	blobsAfter, _ := e.usage()
	if blobsAfter["blob"] >= blobsBefore["blob"] {
		t.Errorf("blobs %d → %d after removing an image and pruning", blobsBefore["blob"], blobsAfter["blob"])
	}
	if r := e.ok("run", "busybox", "echo", "still here"); r.stdout != "still here\n" {
		t.Errorf("busybox after pruning: %s", r)
	}

	e.fails(1, "--keep-duration", "prune", "-f", "--keep-duration", "soon")
	e.fails(1, "--keep-storage", "prune", "-f", "--keep-storage", "lots")
}

// TestAutomaticGC: with a tiny cache-size, the daemon prunes the build
// cache after each build on its own, and the built image still runs.
func TestAutomaticGC(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testutil.WithDaemonConfig("[worker.oci]\ncache-size = 1\ngc = true\n"))
	e.importBusybox()
	e.buildHello("my-hello-app")
	deadline := time.Now().Add(15 * time.Second)
	for {
		counts, _ := e.usage()
		if counts["regular"] <= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the automatic gc left %d cache records (cache-size = 1 byte)", counts["regular"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := e.ok("run", "my-hello-app"); r.stdout != "Hello, Kiln!\n" {
		t.Errorf("run after the automatic gc: %s", r)
	}
}

// TestAutomaticGCPolicies: [[worker.oci.gcpolicy]] from a buildkitd.toml
// drives the automatic gc: a policy filtered to cache mounts empties them
// and leaves the cache records.
func TestAutomaticGCPolicies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testutil.WithDaemonConfig("[worker.oci]\ngc = true\n[[worker.oci.gcpolicy]]\nfilters = [\"type==exec.cachemount\"]\nkeepBytes = 1\n"))
	e.importBusybox()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN --mount=type=cache,target=/c dd if=/dev/zero of=/c/big bs=1k count=64 2>/dev/null && echo done > /done\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("build", "--progress", "plain", "-t", "with-cache", dir)
	deadline := time.Now().Add(15 * time.Second)
	for {
		counts, _ := e.usage()
		if counts["exec.cachemount"] == 0 {
			if counts["regular"] == 0 {
				t.Errorf("the cache-mount policy removed the cache records too: %v", counts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the automatic gc left %d cache mounts (policy: type==exec.cachemount, keepBytes = 1)", counts["exec.cachemount"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPruneFilter: kiln prune --filter type==… prunes only that kind, as
// buildx prune --filter does.
func TestPruneFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.importBusybox()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN --mount=type=cache,target=/c echo x > /c/x && echo done > /done\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("build", "--progress", "plain", dir)
	before, _ := e.usage()
	if before["exec.cachemount"] == 0 || before["regular"] == 0 {
		t.Fatalf("usage before: %v", before)
	}
	e.ok("prune", "-f", "--filter", "type==exec.cachemount")
	after, _ := e.usage()
	if after["exec.cachemount"] != 0 || after["regular"] != before["regular"] {
		t.Errorf("usage %v → %v; want the cache mounts gone and the records kept", before, after)
	}
	e.fails(1, "only type==KIND filters", "prune", "-f", "--filter", "id==abc")
}
