package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// duRecord is one line of kiln du --format json.
type duRecord struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Size        string `json:"size"` // protojson writes int64 as a string
	InUse       bool   `json:"inUse"`
	Shared      bool   `json:"shared"`
	Description string `json:"description"`
}

// cacheMounts returns kiln du's cache mount records by description.
func (e *env) cacheMounts() map[string]duRecord {
	e.t.Helper()
	r := e.ok("du", "--format", "json")
	out := map[string]duRecord{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var rec duRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			e.t.Fatalf("du line %q: %v", line, err)
		}
		if rec.Type == "exec.cachemount" {
			out[rec.Description] = rec
		}
	}
	return out
}

const (
	countedCache = "RUN --mount=type=cache,id=counted"
	heldCache    = "RUN --mount=type=cache,id=held"
)

// TestPruneCacheMounts: kiln du counts a RUN --mount=type=cache directory,
// kiln prune --all removes it (the next build's RUN finds the cache
// empty), and one a running step holds survives the prune.
func TestPruneCacheMounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.importBusybox()

	// Each build (a new N) counts the files it finds in the cache, then
	// adds two, one of 64 KiB.
	counted := t.TempDir()
	writeFiles(t, counted, map[string]string{"Dockerfile": `FROM busybox
ARG N
RUN --mount=type=cache,target=/c,id=counted sh -c 'ls /c | wc -l > /seen; echo $N > /c/n$N; dd if=/dev/zero of=/c/big$N bs=1024 count=64 2>/dev/null'
`})
	seen := func(n int) string {
		t.Helper()
		out := t.TempDir()
		e.ok("build", "--progress", "plain", "--build-arg", fmt.Sprintf("N=%d", n), "-o", "type=local,dest="+out, counted)
		b, err := os.ReadFile(filepath.Join(out, "seen"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := seen(1); got != "0" {
		t.Fatalf("the first build found %s files in a new cache mount", got)
	}
	if got := seen(2); got != "2" {
		t.Fatalf("the second build found %s files in the cache mount, want the first build's 2", got)
	}

	m, ok := e.cacheMounts()[countedCache]
	if !ok || m.InUse || m.Shared || m.Size == "0" {
		t.Fatalf("kiln du: %+v (found %v); want the cache mount with its size, not in use, reclaimable", m, ok)
	}
	var size int64
	if err := json.Unmarshal([]byte(m.Size), &size); err != nil || size < 128<<10 {
		t.Errorf("kiln du: cache mount size %s, want at least the 128 KiB written (%v)", m.Size, err)
	}
	r := e.ok("du")
	counts := false
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "cache" && f[1] == "mounts" {
			counts = f[2] == "1"
		}
	}
	if !counts {
		t.Errorf("kiln du does not count one cache mount:\n%s", r.stdout)
	}

	// Used just now: --keep-duration spares it.
	e.ok("prune", "-f", "--keep-duration", "1h")
	if _, ok := e.cacheMounts()[countedCache]; !ok {
		t.Fatalf("prune --keep-duration 1h removed a cache mount used just now")
	}

	// A build holds another cache mount until the test lets it go.
	held := t.TempDir()
	writeFiles(t, held, map[string]string{"Dockerfile": `FROM busybox
RUN --mount=type=cache,target=/c,id=held sh -c 'echo kept > /c/kept; i=0; while [ ! -e /c/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; test -e /c/go && test -e /c/kept'
`})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kiln, "--addr", e.d.Addr, "build", "--progress", "plain", held)
	cmd.Env = append(os.Environ(), "HOME="+e.home, "DOCKER_CONFIG="+filepath.Join(e.home, ".docker"))
	var heldOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &heldOut, &heldOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	heldDone := make(chan error, 1)
	go func() { heldDone <- cmd.Wait() }()
	var h duRecord
	for deadline := time.Now().Add(time.Minute); ; {
		var ok bool
		if h, ok = e.cacheMounts()[heldCache]; ok && h.InUse {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kiln du never showed the held cache mount in use: %+v\nbuild output:\n%s", e.cacheMounts(), heldOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := e.ok("du", "--verbose"); !strings.Contains(r.stdout, "in use") {
		t.Errorf("kiln du --verbose does not say the held cache mount is in use:\n%s", r.stdout)
	}

	r = e.ok("prune", "-f", "--all", "--verbose")
	if !strings.Contains(r.stdout, "1 cache mount") || !strings.Contains(r.stdout, countedCache) {
		t.Errorf("kiln prune --all does not report the removed cache mount:\n%s", r.stdout)
	}
	after := e.cacheMounts()
	if _, ok := after[countedCache]; ok {
		t.Errorf("the cache mount is still there after prune --all: %+v", after)
	}
	if _, ok := after[heldCache]; !ok {
		t.Errorf("prune --all removed the cache mount a running step holds: %+v", after)
	}

	// Let the held step finish: it still finds what it wrote.
	if err := os.WriteFile(filepath.Join(e.d.Root, "cachemounts", h.ID, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-heldDone; err != nil {
		t.Fatalf("the build holding a cache mount during prune failed: %v\n%s", err, heldOut.String())
	}

	if got := seen(3); got != "0" {
		t.Errorf("after prune --all the build found %s files in its cache mount, want an empty one", got)
	}
	e.ok("prune", "-f", "--all")
	if left := e.cacheMounts(); len(left) != 0 {
		t.Errorf("cache mounts left after the last prune --all: %+v", left)
	}
}
