package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestCacheSizeIsACap: cache-size bounds what kiln du reports as soon as
// each build returns, however quickly the builds follow each other: every
// build ends with a gc pass, least recently used records first, so the
// newest build's steps stay cached.
func TestCacheSizeIsACap(t *testing.T) {
	t.Parallel()
	const capBytes = 50_000_000
	e := newEnv(t, testutil.WithDaemonConfig(fmt.Sprintf("[worker.oci]\ngc = true\ncache-size = %d\n", capBytes)))
	e.importBusybox()
	total := func() (int64, map[string]int64) {
		_, sizes := e.usage()
		var n int64
		for _, s := range sizes {
			n += s
		}
		return n, sizes
	}
	var last string
	for i := range 4 {
		dir := t.TempDir()
		// 20 MB of incompressible data per build, a different step each
		// time.
		df := fmt.Sprintf("FROM busybox\nRUN head -c 20000000 /dev/urandom > /blob && echo build %d > /id\n", i)
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
		e.ok("build", "--progress", "plain", dir)
		n, sizes := total()
		t.Logf("after build %d: %d bytes (%v)", i+1, n, sizes)
		if n > capBytes {
			t.Fatalf("after build %d kiln du reports %d bytes, over cache-size %d: %v", i+1, n, capBytes, sizes)
		}
		if i == 3 && sizes["regular"] < 35_000_000 {
			t.Errorf("after build %d the cache holds %d bytes of records; want the two newest 20 MB steps kept", i+1, sizes["regular"])
		}
		last = dir
	}
	// The newest build's step survived the gc.
	r := e.ok("build", "--progress", "plain", last)
	if !strings.Contains(r.stderr+r.stdout, "CACHED") {
		t.Errorf("rebuilding the newest build ran its step again:\n%s", r)
	}
}
