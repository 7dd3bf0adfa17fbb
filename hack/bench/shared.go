package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-build/kiln/cache/remote/redis/redistest"
)

// sharedCase measures the shared cache (docs/dev/cache.md) on the context
// case, every run on fresh daemon roots and a fresh redis-server and blob
// directory:
//
//   - A cold without a shared cache, and A cold writing every step to the
//     shared cache behind the build (export = "async", the default): the
//     difference is what writing to the index and blob store adds to the
//     build (target: under 10% of the cold build);
//   - A cold with export = "sync", where the build returns once every
//     step is written: when the shared cache holds the whole build;
//   - B's first build after A built it (every step from the shared cache),
//     against B building cold (the first measurement): both and the ratio.
func sharedCase(e *env, runs int) ([]row, error) {
	dir := filepath.Join(e.dir, "context")
	if _, err := os.Stat(filepath.Join(dir, "Dockerfile")); err != nil {
		if err := makeContext(dir); err != nil {
			return nil, err
		}
		if err := writeDockerfile(dir, "FROM busybox\nCOPY . /src\nRUN find /src | wc -l\n"); err != nil {
			return nil, err
		}
	}
	defer func() { e.extraConfig = "" }()

	var srv *redistest.Server
	stopRedis := func() {
		if srv != nil {
			srv.Stop()
			srv = nil
		}
	}
	defer stopRedis()
	// fresh starts a new redis-server and blob directory and points the
	// next daemons at them.
	fresh := func(extra string) error {
		stopRedis()
		var err error
		if srv, err = redistest.StartServer(0); err != nil {
			return fmt.Errorf("redis-server (apt-get install redis-server): %w", err)
		}
		blobs, err := os.MkdirTemp(e.dir, "shared-blobs-")
		if err != nil {
			return err
		}
		e.extraConfig = fmt.Sprintf("[[cache.blob]]\ntype = \"filesystem\"\npath = %q\n[[cache.registry]]\ntype = \"redis\"\nredis-addr = %q\n%s", blobs, srv.Addr, extra)
		return nil
	}

	// The variants take turns, run after run, so that a machine that
	// slows down for a while weighs on all of them alike.
	variants := []struct {
		setup func() error
	}{
		{func() error { // A (or B) cold, no shared cache
			e.extraConfig = ""
			return e.restart()
		}},
		{func() error { // A cold, writing behind the build
			if err := fresh(""); err != nil {
				return err
			}
			return e.restart()
		}},
		{func() error { // A cold, the build waits for its writes
			if err := fresh("export = \"sync\"\n"); err != nil {
				return err
			}
			return e.restart()
		}},
		{func() error { // B's first build after A built the same context
			if err := fresh(""); err != nil {
				return err
			}
			if err := e.restart(); err != nil { // A
				return err
			}
			if err := e.build(dir); err != nil {
				return err
			}
			return e.restart() // B, a fresh root on the same shared cache; A's writes are done
		}},
	}
	times := make([][]time.Duration, len(variants))
	for range runs {
		for i, v := range variants {
			if err := v.setup(); err != nil {
				return nil, err
			}
			start := time.Now()
			if err := e.build(dir); err != nil {
				return nil, err
			}
			times[i] = append(times[i], time.Since(start))
		}
	}
	cold, coldShared, coldSync, afterA := median(times[0]), median(times[1]), median(times[2]), median(times[3])
	added := coldShared - cold
	return []row{
		{name: "shared: cold, no shared", kiln: cold, note: "(B building cold)"},
		{name: "shared: cold, exporting", kiln: coldShared, target: cold + cold/10,
			note: fmt.Sprintf("(+%s, %+.1f%% for writing to the index and blob store behind the build; target < 10%%)", secs(added), 100*float64(added)/float64(cold))},
		{name: "shared: cold, export=sync", kiln: coldSync,
			note: fmt.Sprintf("(+%s, %+.1f%%: the build returns once the shared cache holds every step)", secs(coldSync-cold), 100*float64(coldSync-cold)/float64(cold))},
		{name: "shared: B after A", kiln: afterA,
			note: fmt.Sprintf("(B's first build after A: %.2f× of B cold)", float64(afterA)/float64(cold))},
	}, nil
}
