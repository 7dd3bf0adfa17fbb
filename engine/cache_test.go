package engine

import (
	"archive/tar"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/kiln-build/kiln/cache/remote"
	cacheredis "github.com/kiln-build/kiln/cache/remote/redis"
	"github.com/kiln-build/kiln/cache/remote/redis/redistest"
	cacheregistry "github.com/kiln-build/kiln/cache/remote/registry"
	"github.com/kiln-build/kiln/engine/disk"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile"
	"github.com/kiln-build/kiln/internal/testutil"
)

// cacheHarness is a harness whose engine has the given cache wiring.
func cacheHarness(t *testing.T, base, ctxDir string, caches CacheBackends) *harness {
	t.Helper()
	e, err := Open(context.Background(), Options{
		Root:      t.TempDir(),
		Frontends: map[string]frontend.Frontend{"dockerfile": dockerfile.New()},
		Exporters: testExporters(),
		Caches:    caches,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &harness{e: e, base: base, ctx: ctxDir, steps: &stepLog{},
		sess: &testutil.Session{Ref: "test", Client: "client-1", Dirs: map[string]string{"context": ctxDir}}}
}

// sharedBackends wires a shared cache over redisAddr and blobDir. Its
// writes are behind the builds (the default); tests that read what a
// build wrote call flushShared first. mods adjust the options.
func sharedBackends(t *testing.T, redisAddr, blobDir string, mods ...func(*remote.SharedOptions)) CacheBackends {
	return CacheBackends{Shared: func(ctx context.Context, d remote.Deps) ([]*remote.Shared, error) {
		idx, err := cacheredis.New(cacheredis.Options{Addr: redisAddr, TTL: time.Hour})
		if err != nil {
			return nil, err
		}
		var blobs remote.BlobStore
		if blobs, err = remote.OpenFileStore(blobDir); err != nil {
			return nil, err
		}
		o := remote.SharedOptions{
			Name: "redis", Index: idx, Blobs: blobs, Writer: d.Writer, Importer: d.Importer,
			Layers: d.Layers, Local: d.Local,
		}
		for _, m := range mods {
			m(&o)
		}
		sc, err := remote.NewShared(o)
		if err != nil {
			return nil, err
		}
		return []*remote.Shared{sc}, nil
	}}
}

// flushShared waits until the harness's shared caches hold every step
// its builds wrote behind them.
func (h *harness) flushShared() {
	for _, sc := range h.e.shared {
		sc.Wait()
	}
}

const multiStage = `FROM BASE AS lib
COPY lib.txt /lib.txt
RUN wget -q -O /dev/null http://COUNTER/lib && cat /lib.txt > /lib.out

FROM BASE AS app
COPY app.txt /app.txt
RUN wget -q -O /dev/null http://COUNTER/app && cat /app.txt > /app.out

FROM BASE
COPY --from=lib /lib.out /lib.out
COPY --from=app /app.out /app.out
RUN wget -q -O /dev/null http://COUNTER/final && cat /lib.out /app.out > /all
`

// tarOutput collects a type=tar output's files.
func tarOutput(files map[string]string) Output {
	return tarEntries(func(h *tar.Header, b []byte) { files[strings.TrimPrefix(h.Name, "./")] = string(b) })
}

// tarEntries is a type=tar output that hands each entry to fn.
func tarEntries(fn func(h *tar.Header, data []byte)) Output {
	return Output{Type: "tar", Attrs: map[string]string{"dest": "x"}, Writer: func() (io.WriteCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			tr := tar.NewReader(pr)
			for {
				h, err := tr.Next()
				if err != nil {
					_ = pr.CloseWithError(err)
					return
				}
				b, _ := io.ReadAll(tr)
				fn(h, b)
			}
		}()
		return pw, nil
	}}
}

// ranSteps lists the RUN steps that ran (not cached) in the last build,
// and the sources of the cached ones.
func (h *harness) runSteps() (ran []string, cached map[string]string) {
	h.steps.mu.Lock()
	defer h.steps.mu.Unlock()
	cached = map[string]string{}
	for name, st := range h.steps.status {
		if !strings.Contains(name, "RUN ") {
			continue
		}
		if st.Cached {
			cached[name] = st.CacheSource
		} else {
			ran = append(ran, name)
		}
	}
	return ran, cached
}

func TestSharedCacheTwoDaemons(t *testing.T) {
	_, base, counter := buildFixtures(t)
	srv := redistest.Start(t)
	ctxDir, blobDir := t.TempDir(), t.TempDir()
	a := cacheHarness(t, base, ctxDir, sharedBackends(t, srv.Addr, blobDir))
	b := cacheHarness(t, base, ctxDir, sharedBackends(t, srv.Addr, blobDir))
	a.write(t, "lib.txt", "lib v1\n")
	a.write(t, "app.txt", "app v1\n")
	df := strings.ReplaceAll(multiStage, "COUNTER", counter.Addr)

	build := func(h *harness, who string) map[string]string {
		t.Helper()
		files := map[string]string{}
		if _, err := h.build(t, df, Request{Outputs: []Output{tarOutput(files)}}); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		return files
	}
	wantHits := func(when string, want map[string]int) {
		t.Helper()
		got := counter.Hits()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: RUN %s ran %d times in all, want %d (all: %v)", when, k, got[k], v, got)
			}
		}
	}

	// A builds cold.
	files := build(a, "A cold")
	a.flushShared()
	if files["all"] != "lib v1\napp v1\n" {
		t.Fatalf("A's result /all = %q", files["all"])
	}
	wantHits("A cold", map[string]int{"lib": 1, "app": 1, "final": 1})
	// kiln du's shared line: the index's records and the blob store.
	u, err := a.e.shared[0].Usage(context.Background())
	if err != nil {
		t.Fatalf("Shared.Usage = %+v, %v", u, err)
	}
	if u.Name != "redis" || u.Keys < 7 || u.Records != u.Keys || !u.BlobsCounted || u.Blobs < 5 || u.BlobBytes <= 0 {
		t.Errorf("Shared.Usage = %+v; want every step's record and the blobs", u)
	}
	recs, err := a.e.Disk().Usage(context.Background(), disk.UsageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r := recs[len(recs)-1]; r.Type != disk.TypeShared || r.UsageCount != u.Records || r.Size != u.BlobBytes || !strings.Contains(r.Description, "redis index at") {
		t.Errorf("kiln du's last record = %+v, want the shared cache's (%+v)", r, u)
	}

	// B, on another root, runs nothing: every RUN comes from redis.
	files = build(b, "B first")
	if files["all"] != "lib v1\napp v1\n" {
		t.Errorf("B's result /all = %q", files["all"])
	}
	wantHits("B first", map[string]int{"lib": 1, "app": 1, "final": 1})
	ran, cached := b.runSteps()
	if len(ran) != 0 {
		t.Errorf("B ran %v", ran)
	}
	for name, src := range cached {
		if src != "redis" {
			t.Errorf("B: %s cached from %q, want redis", name, src)
		}
	}
	// B unpacked only the final image's layers: the stages' own layers
	// (lib.txt, app.txt copies and their RUNs) were never downloaded.
	if n, want := committedSnapshots(t, b), 4; n != want {
		t.Errorf("B has %d committed snapshots, want %d (busybox, 2 COPY --from, RUN)", n, want)
	}

	// app.txt changes: B runs only what depends on it.
	b.write(t, "app.txt", "app v2\n")
	files = build(b, "B after change")
	if files["all"] != "lib v1\napp v2\n" {
		t.Errorf("B's result /all after the change = %q", files["all"])
	}
	wantHits("B after change", map[string]int{"lib": 1, "app": 2, "final": 2})
	b.flushShared()

	// A rebuilds it fully cached from B's records.
	files = build(a, "A after B")
	if files["all"] != "lib v1\napp v2\n" {
		t.Errorf("A's result after B's build = %q", files["all"])
	}
	wantHits("A after B", map[string]int{"lib": 1, "app": 2, "final": 2})
	ran, cached = a.runSteps()
	if len(ran) != 0 {
		t.Errorf("A ran %v after B built the change", ran)
	}
	if src := cached[findName(cached, "RUN wget -q -O /dev/null http://"+counter.Addr+"/final")]; src != "redis" {
		t.Errorf("A's final RUN cached from %q, want redis (%v)", src, cached)
	}
}

func findName(m map[string]string, part string) string {
	for k := range m {
		if strings.Contains(k, part) {
			return k
		}
	}
	return ""
}

func committedSnapshots(t *testing.T, h *harness) int {
	t.Helper()
	n := 0
	err := h.e.snapshotter.Walk(context.Background(), func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindCommitted {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func registryBackends() CacheBackends {
	return CacheBackends{Types: remote.Backends{
		remote.TypeRegistry: cacheregistry.Backend(),
		remote.TypeInline:   remote.InlineBackend(),
	}}
}

func TestRegistryCacheExportImport(t *testing.T) {
	host, base, counter := buildFixtures(t)
	ctxDir := t.TempDir()
	df := strings.ReplaceAll(multiStage, "COUNTER", counter.Addr)
	a := cacheHarness(t, base, ctxDir, registryBackends())
	a.write(t, "lib.txt", "lib v1\n")
	a.write(t, "app.txt", "app v1\n")

	for _, mode := range []string{remote.ModeMax, remote.ModeMin} {
		t.Run(mode, func(t *testing.T) {
			ref := host + "/cache/app:" + mode
			to := CacheExport{Type: "registry", Attrs: map[string]string{"ref": ref, "mode": mode}}
			if _, err := a.build(t, df, Request{CacheTo: []CacheExport{to}}); err != nil {
				t.Fatal(err)
			}
			from := CacheImport{Type: "registry", Attrs: map[string]string{"ref": ref}}
			before := counter.Hits()
			b := cacheHarness(t, base, ctxDir, registryBackends())
			files := map[string]string{}
			if _, err := b.build(t, df, Request{CacheFrom: []CacheImport{from}, Outputs: []Output{tarOutput(files)}}); err != nil {
				t.Fatal(err)
			}
			if files["all"] != "lib v1\napp v1\n" {
				t.Errorf("result /all = %q", files["all"])
			}
			ran, cached := b.runSteps()
			after := counter.Hits()
			if mode == remote.ModeMax {
				if len(ran) != 0 || after["final"] != before["final"] || after["lib"] != before["lib"] {
					t.Errorf("mode=max import ran %v (cached %v)", ran, cached)
				}
				for name, src := range cached {
					if src != "registry" {
						t.Errorf("%s cached from %q", name, src)
					}
				}
			} else {
				// mode=min has the result's records only: the final RUN
				// is cached and the stages need not run at all.
				if after["final"] != before["final"] {
					t.Errorf("mode=min: the final RUN ran (cached %v)", cached)
				}
			}
		})
	}
}

func TestInlineCache(t *testing.T) {
	host, base, counter := buildFixtures(t)
	ctxDir := t.TempDir()
	df := strings.ReplaceAll("FROM BASE\nCOPY app.txt /app.txt\nRUN wget -q -O /dev/null http://COUNTER/one && cp /app.txt /one\n", "COUNTER", counter.Addr)
	a := cacheHarness(t, base, ctxDir, registryBackends())
	a.write(t, "app.txt", "v1\n")
	img := host + "/app/inline:1"
	if _, err := a.build(t, df, Request{
		Outputs: []Output{{Type: "registry", Attrs: map[string]string{"name": img}}},
		CacheTo: []CacheExport{{Type: "inline"}},
	}); err != nil {
		t.Fatal(err)
	}
	b := cacheHarness(t, base, ctxDir, registryBackends())
	from := CacheImport{Type: "registry", Attrs: map[string]string{"ref": img}}
	files := map[string]string{}
	if _, err := b.build(t, df, Request{CacheFrom: []CacheImport{from}, Outputs: []Output{tarOutput(files)}}); err != nil {
		t.Fatal(err)
	}
	if got := counter.Hits()["one"]; got != 1 {
		t.Errorf("the RUN ran %d times, want once (B should take it from the inline cache)", got)
	}
	if files["one"] != "v1\n" {
		t.Errorf("/one = %q", files["one"])
	}
	if _, cached := b.runSteps(); len(cached) != 1 {
		t.Errorf("cached RUN steps: %v", cached)
	}
}
