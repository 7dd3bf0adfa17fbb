package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kiln-build/kiln/cache/remote"
	cacheredis "github.com/kiln-build/kiln/cache/remote/redis"
	"github.com/kiln-build/kiln/cache/remote/redis/redistest"
	cacheregistry "github.com/kiln-build/kiln/cache/remote/registry"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/engine/disk"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/progress"
)

// sharedEnv is a redis, a blob directory, a registry with busybox and a
// step counter, for engines that share a cache.
type sharedEnv struct {
	redis   *redistest.Server
	blobs   string
	base    string
	counter *testutil.HitCounter
}

func newSharedEnv(t *testing.T) *sharedEnv {
	t.Helper()
	_, base, counter := buildFixtures(t)
	return &sharedEnv{redis: redistest.Start(t), blobs: t.TempDir(), base: base, counter: counter}
}

// buildFixtures skips a test that cannot run builds, and starts a registry
// holding busybox (base) and a step counter.
func buildFixtures(t *testing.T) (host, base string, counter *testutil.HitCounter) {
	t.Helper()
	testroot.RequireSlow(t, "runs real builds")
	counter = testutil.StartHitCounter(t)
	host = testutil.StartRegistry(t)
	base = host + "/library/busybox:latest"
	testutil.PushImage(t, base, testutil.BusyboxImage(t, testutil.HostPlatform()))
	return host, base, counter
}

func (s *sharedEnv) engine(t *testing.T, ctxDir string) *harness {
	return cacheHarness(t, s.base, ctxDir, sharedBackends(t, s.redis.Addr, s.blobs))
}

func (s *sharedEnv) records(t *testing.T) []remote.Record {
	t.Helper()
	idx, err := cacheredis.New(cacheredis.Options{Addr: s.redis.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	var out []remote.Record
	if err := idx.List(context.Background(), "", func(r remote.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSharedCacheMissingAndCorruptBlobs(t *testing.T) {
	s := newSharedEnv(t)
	ctxDir := t.TempDir()
	df := strings.ReplaceAll(multiStage, "COUNTER", s.counter.Addr)
	a := s.engine(t, ctxDir)
	a.write(t, "lib.txt", "lib\n")
	a.write(t, "app.txt", "app\n")
	if _, err := a.build(t, df, Request{}); err != nil {
		t.Fatal(err)
	}
	a.flushShared()
	// topBlob is the path of the final RUN's own layer in the newest
	// record of its key (the record with the longest chain).
	topBlob := func() string {
		var top remote.Record
		for _, r := range s.records(t) {
			if len(r.Layers) > len(top.Layers) || (len(r.Layers) == len(top.Layers) && r.Created.After(top.Created)) {
				top = r
			}
		}
		return filepath.Join(s.blobs, "blobs", "sha256", top.Layers[len(top.Layers)-1].Digest.Encoded())
	}
	build := func(name string) *harness {
		t.Helper()
		h := s.engine(t, ctxDir)
		files := map[string]string{}
		if _, err := h.build(t, df, Request{Outputs: []Output{tarOutput(files)}}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if files["all"] != "lib\napp\n" {
			t.Errorf("%s: result /all = %q", name, files["all"])
		}
		h.flushShared()
		return h
	}

	// A record whose blob is gone is a miss: the step runs, quietly.
	if err := os.Remove(topBlob()); err != nil {
		t.Fatal(err)
	}
	b := build("missing blob")
	if ran, _ := b.runSteps(); len(ran) != 1 || !strings.Contains(ran[0], "/final") {
		t.Errorf("with the final RUN's blob missing, B ran %v; want just that RUN", ran)
	}
	for _, w := range b.steps.warns {
		if strings.Contains(w, "redis") {
			t.Errorf("a missing blob is a plain miss, yet B warned: %s", w)
		}
	}

	// A blob whose bytes do not match its digest (same size): the lookup
	// takes the record, the import checks the digest and fails, and the
	// step runs instead. The corrupt blob leaves the store.
	corrupt := topBlob() // B's, written by its re-run
	data, err := os.ReadFile(corrupt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] ^= 0xff
	}
	if err := os.Chmod(corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(corrupt, data, 0o644); err != nil {
		t.Fatal(err)
	}
	before := s.counter.Hits()["final"]
	c := build("corrupt blob")
	if got := s.counter.Hits()["final"]; got != before+1 {
		t.Errorf("the final RUN ran %d more times, want 1 (its cached layer was corrupt)", got-before)
	}
	if !strings.Contains(strings.Join(c.steps.warns, "\n"), "corrupt") {
		t.Errorf("no warning about the corrupt blob: %q", c.steps.warns)
	}
	if st, err := os.Stat(corrupt); err == nil {
		if b, _ := os.ReadFile(corrupt); bytes.Equal(b, data) {
			t.Errorf("the corrupt blob is still in the store (%d bytes)", st.Size())
		}
	}
}

func TestSharedCacheConcurrentWriters(t *testing.T) {
	s := newSharedEnv(t)
	df := strings.ReplaceAll(multiStage, "COUNTER", s.counter.Addr)
	branches := map[string]string{}
	for _, br := range []string{"main", "feature"} {
		dir := t.TempDir()
		for name, data := range map[string]string{"lib.txt": "lib " + br + "\n", "app.txt": "app " + br + "\n"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		branches[br] = dir
	}
	// Two daemons build different branches at the same time.
	var wg sync.WaitGroup
	for _, br := range []string{"main", "feature"} {
		h := s.engine(t, branches[br])
		wg.Go(func() {
			if _, err := h.build(t, df, Request{}); err != nil {
				t.Errorf("%s: %v", br, err)
			}
			h.flushShared()
		})
	}
	wg.Wait()
	runs := s.counter.Hits()
	// A third daemon builds both branches and runs nothing: both writers
	// kept all their records.
	for _, br := range []string{"main", "feature"} {
		c := s.engine(t, branches[br])
		files := map[string]string{}
		if _, err := c.build(t, df, Request{Outputs: []Output{tarOutput(files)}}); err != nil {
			t.Fatal(err)
		}
		if want := "lib " + br + "\napp " + br + "\n"; files["all"] != want {
			t.Errorf("%s: /all = %q, want %q", br, files["all"], want)
		}
		if ran, _ := c.runSteps(); len(ran) != 0 {
			t.Errorf("%s: a third daemon ran %v", br, ran)
		}
	}
	if got := s.counter.Hits(); fmt.Sprint(got) != fmt.Sprint(runs) {
		t.Errorf("steps ran again: %v, then %v", runs, got)
	}
}

func TestReexportDownloadsNothing(t *testing.T) {
	// A fresh daemon imports a registry cache and exports it to another
	// ref, with no output: every step is a hit, nothing is unpacked, and
	// the blobs go from registry to registry (mounted).
	host, base, counter := buildFixtures(t)
	ctxDir := t.TempDir()
	df := strings.ReplaceAll(multiStage, "COUNTER", counter.Addr)
	a := cacheHarness(t, base, ctxDir, registryBackends())
	a.write(t, "lib.txt", "lib\n")
	a.write(t, "app.txt", "app\n")
	first, second := host+"/cache/one:max", host+"/cache/two:max"
	to := func(ref string) CacheExport {
		return CacheExport{Type: "registry", Attrs: map[string]string{"ref": ref, "mode": "max"}}
	}
	from := func(ref string) CacheImport {
		return CacheImport{Type: "registry", Attrs: map[string]string{"ref": ref}}
	}
	if _, err := a.build(t, df, Request{CacheTo: []CacheExport{to(first)}}); err != nil {
		t.Fatal(err)
	}
	b := cacheHarness(t, base, ctxDir, registryBackends())
	if _, err := b.build(t, df, Request{CacheFrom: []CacheImport{from(first)}, CacheTo: []CacheExport{to(second)}}); err != nil {
		t.Fatal(err)
	}
	if ran, _ := b.runSteps(); len(ran) != 0 {
		t.Errorf("B ran %v", ran)
	}
	if n := committedSnapshots(t, b); n != 0 {
		t.Errorf("B unpacked %d snapshots; re-exporting hits needs none", n)
	}
	// The second ref is a complete cache.
	c := cacheHarness(t, base, ctxDir, registryBackends())
	files := map[string]string{}
	if _, err := c.build(t, df, Request{CacheFrom: []CacheImport{from(second)}, Outputs: []Output{tarOutput(files)}}); err != nil {
		t.Fatal(err)
	}
	if ran, _ := c.runSteps(); len(ran) != 0 || files["all"] != "lib\napp\n" {
		t.Errorf("from the re-exported cache: ran %v, /all = %q", ran, files["all"])
	}
}

func TestSharedCacheRegistryBlobStore(t *testing.T) {
	// [[cache.blob]] type = "registry": the shared blobs live in a
	// registry repository.
	s := newSharedEnv(t)
	repo := strings.TrimSuffix(s.base, "/library/busybox:latest") + "/kiln/shared-cache"
	// The shared cache comes from kilnd.toml's tables, through the
	// backends their types name, as kilnd wires it.
	doc := fmt.Sprintf("[[cache.registry]]\ntype = \"redis\"\nredis-addr = %q\n\n[[cache.blob]]\ntype = \"registry\"\nref = %q\n", s.redis.Addr, repo)
	cfg, _, err := config.Load(strings.NewReader(doc), "kilnd.toml")
	if err != nil {
		t.Fatal(err)
	}
	backends := CacheBackends{
		Types:   remote.Backends{cacheredis.Type: cacheredis.Backend(), remote.TypeRegistry: cacheregistry.Backend()},
		Indexes: cfg.CacheTables("registry"), Blobs: cfg.CacheTables("blob"),
	}
	ctxDir := t.TempDir()
	df := strings.ReplaceAll(multiStage, "COUNTER", s.counter.Addr)
	a := cacheHarness(t, s.base, ctxDir, backends)
	a.write(t, "lib.txt", "lib\n")
	a.write(t, "app.txt", "app\n")
	if _, err := a.build(t, df, Request{}); err != nil {
		t.Fatal(err)
	}
	a.flushShared()
	b := cacheHarness(t, s.base, ctxDir, backends)
	files := map[string]string{}
	if _, err := b.build(t, df, Request{Outputs: []Output{tarOutput(files)}}); err != nil {
		t.Fatal(err)
	}
	ran, cached := b.runSteps()
	if len(ran) != 0 || len(cached) != 3 || files["all"] != "lib\napp\n" {
		t.Errorf("B: ran %v, cached %v, /all = %q", ran, cached, files["all"])
	}
}

// gatedIndex holds every record write until open is closed; puts gets a
// value as each write starts waiting.
type gatedIndex struct {
	remote.Index
	open chan struct{}
	puts chan struct{}
}

func (g *gatedIndex) Put(ctx context.Context, rec remote.Record, build string) error {
	select {
	case g.puts <- struct{}{}:
	default:
	}
	select {
	case <-g.open:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return g.Index.Put(ctx, rec, build)
}

func TestSharedCacheWriteBehind(t *testing.T) {
	s := newSharedEnv(t)
	df := strings.ReplaceAll(multiStage, "COUNTER", s.counter.Addr)
	ctxDir := t.TempDir()
	for name, data := range map[string]string{"lib.txt": "lib\n", "app.txt": "app\n"} {
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gated := func(g *gatedIndex, mods ...func(*remote.SharedOptions)) *harness {
		return cacheHarness(t, s.base, ctxDir, sharedBackends(t, s.redis.Addr, s.blobs, append([]func(*remote.SharedOptions){func(o *remote.SharedOptions) {
			g.Index = o.Index
			o.Index = g
		}}, mods...)...))
	}
	newGate := func() *gatedIndex { return &gatedIndex{open: make(chan struct{}), puts: make(chan struct{}, 1)} }
	// buildWithin builds on h and fails if the build does not return
	// within a minute (a build that waits for a closed gate never does).
	buildWithin := func(h *harness, why string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := h.build(t, df, Request{})
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("the build did not return: %s", why)
		}
	}

	// Write-behind (the default): the build returns while its records
	// wait at the gate; kiln du counts them as pending; none is in the
	// index until the gate opens.
	g := newGate()
	a := gated(g)
	buildWithin(a, "it waited for its shared cache writes")
	sc := a.e.shared[0]
	if sc.Pending() == 0 {
		t.Fatal("no step is pending after the build, though every record write is held")
	}
	recs, _ := a.e.Disk().Usage(context.Background(), disk.UsageRequest{})
	if r := recs[len(recs)-1]; r.Type != disk.TypeShared || r.PendingWrites == 0 || !r.InUse {
		t.Errorf("kiln du's shared cache = %+v; want the pending writes", r)
	}
	if recs := s.records(t); len(recs) != 0 {
		t.Errorf("the index holds %d records before any write went through", len(recs))
	}
	// The progress says the writes go on after the build.
	if name, _ := findStep(a, "writing the last"); !strings.Contains(name, "steps in the background") {
		t.Errorf("no progress step about the writes left: %q", name)
	}
	close(g.open)
	a.flushShared()
	if sc.Pending() != 0 || len(s.records(t)) < 7 {
		t.Errorf("after the writes: %d pending, %d records; want 0 and every step's", sc.Pending(), len(s.records(t)))
	}

	// A stopping daemon finishes its writes first.
	flushAll(t, s.redis)
	g = newGate()
	b := gated(g)
	b.write(t, "app.txt", "app v2\n") // b's own records, not a's
	buildWithin(b, "it waited for its shared cache writes")
	go func() {
		time.Sleep(200 * time.Millisecond)
		close(g.open)
	}()
	if err := b.e.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(s.records(t)); n < 7 {
		t.Errorf("after Close the index holds %d records, want every step's", n)
	}

	// ... but for no longer than the flush timeout: what is left is
	// dropped, and no record names a blob that was not written.
	flushAll(t, s.redis)
	g = newGate()
	c := gated(g, func(o *remote.SharedOptions) { o.FlushTimeout = 300 * time.Millisecond })
	c.write(t, "app.txt", "app v3\n")
	buildWithin(c, "it waited for its shared cache writes")
	if err := c.e.Close(); err != nil {
		t.Fatal(err)
	}
	if n := c.e.shared[0].Pending(); n != 0 {
		t.Errorf("%d writes still pending after Close", n)
	}
	if n := len(s.records(t)); n != 0 {
		t.Errorf("the index holds %d records, though every write was held until Close gave up", n)
	}

	// With Sync a build returns only once its steps are written.
	g = newGate()
	d := gated(g, func(o *remote.SharedOptions) { o.Sync = true })
	d.write(t, "app.txt", "app v4\n")
	done := make(chan error, 1)
	go func() {
		_, err := d.build(t, df, Request{})
		done <- err
	}()
	select {
	case <-g.puts:
	case err := <-done:
		t.Fatalf("a sync build returned (%v) before any record write", err)
	}
	select {
	case err := <-done:
		t.Fatalf("a sync build returned (%v) while its record writes were held", err)
	case <-time.After(500 * time.Millisecond):
	}
	close(g.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := d.e.shared[0].Pending(); n != 0 {
		t.Errorf("a sync build returned with %d writes pending", n)
	}
	if name, st := findStep(d, "writing to the shared cache"); name == "" {
		t.Error("a sync build shows no step for the writes it waits for")
	} else if st.Completed == nil || st.Error != "" {
		t.Errorf("the sync write step ended as %+v", st)
	}
}

// flushAll empties the redis-server.
func flushAll(t *testing.T, srv *redistest.Server) {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: srv.HostPort})
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

// findStep returns the name and last status of the harness's last-build
// step whose name contains part ("" if none).
func findStep(h *harness, part string) (string, progress.VertexStatus) {
	h.steps.mu.Lock()
	defer h.steps.mu.Unlock()
	for name, st := range h.steps.status {
		if strings.Contains(name, part) {
			return name, st
		}
	}
	return "", progress.VertexStatus{}
}

// [[cache.registry]] compression: the layers a shared cache makes are in
// that compression, and another daemon imports them.
func TestSharedCacheCompression(t *testing.T) {
	for _, tc := range []struct {
		comp, mediaType string
	}{
		{"", ocispec.MediaTypeImageLayerZstd},
		{remote.CompressionGzip, ocispec.MediaTypeImageLayerGzip},
		{remote.CompressionUncompressed, ocispec.MediaTypeImageLayer},
	} {
		t.Run("compression="+tc.comp, func(t *testing.T) {
			s := newSharedEnv(t)
			ctxDir := t.TempDir()
			if err := os.WriteFile(filepath.Join(ctxDir, "a.txt"), []byte("a\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			df := "FROM BASE\nCOPY a.txt /a.txt\nRUN wget -q -O /dev/null http://" + s.counter.Addr + "/run && cat /a.txt > /b.txt\n"
			backends := sharedBackends(t, s.redis.Addr, s.blobs, func(o *remote.SharedOptions) { o.Compression = tc.comp })
			a := cacheHarness(t, s.base, ctxDir, backends)
			if _, err := a.build(t, df, Request{}); err != nil {
				t.Fatal(err)
			}
			a.flushShared()
			// The base image's layer is stored as the image has it; the
			// COPY and RUN layers are made by the cache.
			made := map[string]int{}
			for _, r := range s.records(t) {
				for _, l := range r.Layers[1:] {
					made[l.MediaType]++
				}
			}
			if len(made) != 1 || made[tc.mediaType] == 0 {
				t.Errorf("layers made by the cache: %v, want only %s", made, tc.mediaType)
			}
			b := cacheHarness(t, s.base, ctxDir, backends)
			files := map[string]string{}
			if _, err := b.build(t, df, Request{Outputs: []Output{tarOutput(files)}}); err != nil {
				t.Fatal(err)
			}
			if ran, _ := b.runSteps(); len(ran) != 0 || files["b.txt"] != "a\n" {
				t.Errorf("B: ran %v, /b.txt = %q", ran, files["b.txt"])
			}
		})
	}
}
