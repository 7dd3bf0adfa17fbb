package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/cache/remote/redis/redistest"
	"github.com/kiln-build/kiln/internal/testutil"
)

// The cache tests run two real kilnd daemons on different roots that share
// one redis-server (127.0.0.1, started here) as the cache index and one
// directory as the blob store, as build agents sharing a cache do.

// cacheEnv is a registry with busybox, a redis-server, a shared blob
// directory and a step counter; daemons are started on demand.
type cacheEnv struct {
	t       *testing.T
	kiln    string
	kilnd   string
	reg     *testutil.Distribution
	redis   *redistest.Server
	blobs   string
	counter *testutil.HitCounter
}

func newCacheEnv(t *testing.T) *cacheEnv {
	t.Helper()
	kilnd, kiln := binaries(t)
	reg := testutil.StartDistribution(t, testutil.DistributionOptions{})
	testutil.PushImage(t, reg.Ref("library/busybox:latest"), testutil.BusyboxImage(t, testutil.HostPlatform()), reg.RemoteOptions()...)
	return &cacheEnv{t: t, kiln: kiln, kilnd: kilnd, reg: reg, redis: redistest.Start(t), blobs: t.TempDir(), counter: testutil.StartHitCounter(t)}
}

// daemon starts a kilnd on its own root using the shared cache at
// redisAddr ("" for none); extra is added to its [[cache.registry]].
func (c *cacheEnv) daemon(redisAddr string, extra ...string) *bldEnv {
	c.t.Helper()
	cfg := fmt.Sprintf("[worker.oci]\nmax-parallelism = 4\n[registry.\"docker.io\"]\nmirrors = [%q]\n[registry.%q]\nhttp = true\n", c.reg.Host, c.reg.Host)
	if redisAddr != "" {
		cfg += fmt.Sprintf("[[cache.blob]]\ntype = \"filesystem\"\npath = %q\n[[cache.registry]]\ntype = \"redis\"\nredis-addr = %q\nttl = \"24h\"\n", c.blobs, redisAddr)
		for _, x := range extra {
			cfg += x + "\n"
		}
	}
	e := &bldEnv{t: c.t, kiln: c.kiln, kilnd: c.kilnd, reg: c.reg, root: c.t.TempDir(), cfg: cfg}
	e.start()
	return e
}

// pendingWrites returns the steps daemon e is still writing to its
// shared cache, as kiln du --format json reports them.
func (c *cacheEnv) pendingWrites(e *bldEnv) int {
	c.t.Helper()
	cmd := e.kilnCmd(context.Background(), "du", "--format", "json")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("kiln du: %v\n%s", err, errb.String())
	}
	n, lines := 0, 0
	for line := range strings.Lines(out.String()) {
		var r struct {
			Type          string `json:"type"`
			PendingWrites int    `json:"pendingWrites,string"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			c.t.Fatalf("kiln du --format json: %v in %q", err, line)
		}
		if r.Type == "shared" {
			n += r.PendingWrites
			lines++
		}
	}
	if lines == 0 {
		c.t.Fatalf("kiln du --format json has no shared cache record:\n%s", out.String())
	}
	return n
}

// waitWritten waits until daemon e has written every step of its builds
// to the shared cache (they are written behind the builds).
func (c *cacheEnv) waitWritten(e *bldEnv) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for c.pendingWrites(e) > 0 {
		if time.Now().After(deadline) {
			c.t.Fatal("kilnd did not finish writing to the shared cache within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cacheBuild is one kiln build's progress: every step's final state and
// where cached steps came from.
type cacheBuild struct {
	buildResult
	sources map[string]string // step name → cache source, for cached steps
}

// build runs kiln build --progress rawjson in dir.
func (c *cacheEnv) build(e *bldEnv, dir string, args ...string) cacheBuild {
	c.t.Helper()
	r := e.build(dir, args...)
	return cacheBuild{buildResult: r, sources: cacheSources(r.stderr)}
}

func cacheSources(out string) map[string]string {
	src := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Vertex *struct {
				Name        string `json:"name"`
				Cached      bool   `json:"cached"`
				CacheSource string `json:"cacheSource"`
			} `json:"vertex"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Vertex != nil && ev.Vertex.Cached {
			src[ev.Vertex.Name] = ev.Vertex.CacheSource
		}
	}
	return src
}

// runSources returns the cache sources of the RUN steps.
func (b cacheBuild) runSources() map[string]string {
	out := map[string]string{}
	for name, s := range b.sources {
		if strings.Contains(name, "] RUN ") {
			out[name] = s
		}
	}
	return out
}

const cacheMultiStage = `FROM busybox AS lib
COPY lib.txt /lib.txt
RUN wget -q -O /dev/null http://COUNTER/lib && cat /lib.txt > /lib.out

FROM busybox AS app
COPY app.txt /app.txt
RUN wget -q -O /dev/null http://COUNTER/app && cat /app.txt > /app.out

FROM busybox
COPY --from=lib /lib.out /lib.out
COPY --from=app /app.out /app.out
RUN wget -q -O /dev/null http://COUNTER/final && cat /lib.out /app.out > /all
CMD ["cat", "/all"]
`

func (c *cacheEnv) context(files map[string]string) string {
	c.t.Helper()
	dir := c.t.TempDir()
	writeFiles(c.t, dir, map[string]string{"Dockerfile": strings.ReplaceAll(cacheMultiStage, "COUNTER", c.counter.Addr)})
	writeFiles(c.t, dir, files)
	return dir
}

func (c *cacheEnv) wantRuns(when string, want map[string]int) {
	c.t.Helper()
	got := c.counter.Hits()
	for k, v := range want {
		if got[k] != v {
			c.t.Errorf("%s: RUN %s ran %d times in all, want %d (all: %v)", when, k, got[k], v, got)
		}
	}
}

// resultFile exports the built image's filesystem and reads one file.
func resultFile(t *testing.T, e *bldEnv, dir, file string) string {
	t.Helper()
	out := t.TempDir()
	if r := e.build(dir, "-o", "type=local,dest="+out); r.err != nil {
		t.Fatalf("export: %v\n%s", r.err, r.stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCacheTwoDaemonsShareRedis(t *testing.T) {
	c := newCacheEnv(t)
	// A writes behind its builds (the default), B before its builds end.
	a, b := c.daemon(c.redis.Addr), c.daemon(c.redis.Addr, `export = "sync"`)
	dir := c.context(map[string]string{"lib.txt": "lib v1\n", "app.txt": "app v1\n"})

	// A builds cold: every RUN runs once. Its steps are in the shared
	// cache once kiln du says none is pending.
	if r := c.build(a, dir, "-t", "app:1"); r.err != nil {
		t.Fatalf("A: %v\n%s", r.err, r.stderr)
	}
	c.wantRuns("A cold", map[string]int{"lib": 1, "app": 1, "final": 1})
	c.waitWritten(a)

	// B builds the same Dockerfile and runs no RUN: all CACHED (redis).
	r := c.build(b, dir, "-t", "app:1")
	if r.err != nil {
		t.Fatalf("B: %v\n%s", r.err, r.stderr)
	}
	c.wantRuns("B first build", map[string]int{"lib": 1, "app": 1, "final": 1})
	if ran := r.ranSteps(); len(ran) != 0 {
		t.Errorf("B ran %v", ran)
	}
	runs := r.runSources()
	if len(runs) != 3 {
		t.Errorf("B's cached RUN steps: %v, want all 3", runs)
	}
	for name, src := range runs {
		if src != "redis" {
			t.Errorf("B: %s is CACHED from %q, want redis", name, src)
		}
	}
	if got := resultFile(t, b, dir, "all"); got != "lib v1\napp v1\n" {
		t.Errorf("B's image /all = %q", got)
	}
	// The plain progress says where the hits came from.
	plain := b.kilnCmd(context.Background(), "build", "--progress", "plain", "--no-cache-filter", "nothing", dir)
	var out bytes.Buffer
	plain.Stderr = &out
	if err := plain.Run(); err != nil {
		t.Fatalf("plain build: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "CACHED") {
		t.Errorf("plain progress has no CACHED step:\n%s", out.String())
	}

	// One source file changes: B runs only what depends on it.
	writeFiles(t, dir, map[string]string{"app.txt": "app v2\n"})
	r = c.build(b, dir, "-t", "app:2")
	if r.err != nil {
		t.Fatalf("B after the change: %v\n%s", r.err, r.stderr)
	}
	c.wantRuns("B after the change", map[string]int{"lib": 1, "app": 2, "final": 2})
	sort.Strings(r.ranSteps())
	if n := c.pendingWrites(b); n != 0 {
		t.Errorf("B (export = \"sync\") has %d steps still to write after its build", n)
	}

	// A rebuilds it fully cached, from B's records.
	r = c.build(a, dir, "-t", "app:2")
	if r.err != nil {
		t.Fatalf("A after B: %v\n%s", r.err, r.stderr)
	}
	c.wantRuns("A after B", map[string]int{"lib": 1, "app": 2, "final": 2})
	if ran := r.ranSteps(); len(ran) != 0 {
		t.Errorf("A ran %v after B built the change", ran)
	}
	redisRuns := 0
	for _, src := range r.runSources() {
		if src == "redis" {
			redisRuns++
		}
	}
	if redisRuns != 2 {
		t.Errorf("A's RUN steps from redis: %v, want the app and final RUNs", r.runSources())
	}
	if got := resultFile(t, a, dir, "all"); got != "lib v1\napp v2\n" {
		t.Errorf("A's image /all = %q", got)
	}

	// kiln cache ls --remote shows both daemons' records, through kilnd
	// (the default) and read from Redis directly (--redis-addr).
	for _, how := range [][]string{nil, {"--redis-addr", c.redis.Addr}} {
		ls := a.kilnCmd(context.Background(), append([]string{"cache", "ls", "--remote", "--format", "json"}, how...)...)
		var lsOut, lsErr bytes.Buffer
		ls.Stdout, ls.Stderr = &lsOut, &lsErr
		if err := ls.Run(); err != nil {
			t.Fatalf("kiln cache ls --remote %v: %v\n%s", how, err, lsErr.String())
		}
		var rows []struct {
			Key, Writer string
			Layers      int
		}
		if err := json.Unmarshal(lsOut.Bytes(), &rows); err != nil {
			t.Fatalf("kiln cache ls --remote %v: %v\n%s", how, err, lsOut.String())
		}
		writers := map[string]bool{}
		for _, r := range rows {
			writers[r.Writer] = true
		}
		if len(writers) != 2 || len(rows) < 8 {
			t.Errorf("kiln cache ls --remote %v: the index lists %d records of writers %v; want both daemons' records", how, len(rows), writers)
		}
	}

	// kiln du counts the shared cache on a line of its own.
	du := a.kilnCmd(context.Background(), "du")
	var duOut bytes.Buffer
	du.Stdout, du.Stderr = &duOut, &duOut
	if err := du.Run(); err != nil {
		t.Fatalf("kiln du: %v\n%s", err, duOut.String())
	}
	if !strings.Contains(duOut.String(), "shared cache (redis ") {
		t.Errorf("kiln du has no shared cache line:\n%s", duOut.String())
	}
}

func TestCacheStoppingDaemonFinishesWrites(t *testing.T) {
	// A CI agent that builds and is stopped at once (SIGTERM) still
	// leaves every step in the shared cache: kilnd finishes the writes
	// still running behind the build before it exits.
	c := newCacheEnv(t)
	a := c.daemon(c.redis.Addr)
	dir := t.TempDir()
	df := fmt.Sprintf("FROM busybox\nRUN wget -q -O /dev/null http://%s/big && dd if=/dev/urandom of=/big bs=1M count=48 2>/dev/null\nRUN wget -q -O /dev/null http://%s/last && echo done > /last\n", c.counter.Addr, c.counter.Addr)
	writeFiles(t, dir, map[string]string{"Dockerfile": df})
	if r := c.build(a, dir); r.err != nil {
		t.Fatalf("A: %v\n%s", r.err, r.stderr)
	}
	if err := a.d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := a.d.Wait(time.Minute); err != nil || code != 0 {
		t.Fatalf("A after SIGTERM: exit %d, %v\n%s", code, err, a.d.Stderr())
	}
	b := c.daemon(c.redis.Addr)
	r := c.build(b, dir)
	if r.err != nil {
		t.Fatalf("B: %v\n%s", r.err, r.stderr)
	}
	if ran := r.ranSteps(); len(ran) != 0 {
		t.Errorf("B ran %v: A stopped before writing them", ran)
	}
	c.wantRuns("B after A stopped", map[string]int{"big": 1, "last": 1})
}

func TestCacheRedisDown(t *testing.T) {
	c := newCacheEnv(t)
	// An address nothing listens on: the daemon starts, builds warn once
	// and go on with the local cache.
	dead := c.redis.Addr
	c.redis.Stop()
	d := c.daemon(dead)
	dir := c.context(map[string]string{"lib.txt": "lib\n", "app.txt": "app\n"})
	r := c.build(d, dir)
	if r.err != nil {
		t.Fatalf("build with redis down: %v\n%s", r.err, r.stderr)
	}
	checkRedisWarnings(t, warnings(r.stderr))
	c.wantRuns("redis down", map[string]int{"lib": 1, "app": 1, "final": 1})
	// The local cache still works.
	if r := c.build(d, dir); r.err != nil || len(r.ranSteps()) != 0 {
		t.Errorf("rebuild with redis down: ran %v, err %v", r.ranSteps(), r.err)
	}
}

func TestCacheRedisGoesAwayMidBuild(t *testing.T) {
	c := newCacheEnv(t)
	d := c.daemon(c.redis.Addr)
	dir := t.TempDir()
	// The second RUN stops redis while the build runs.
	df := fmt.Sprintf("FROM busybox\nRUN echo one > /one\nRUN wget -q -O /dev/null http://%s/stop && sleep 1 && echo two > /two\nRUN echo three > /three\n", c.counter.Addr)
	writeFiles(t, dir, map[string]string{"Dockerfile": df})
	stopped := make(chan struct{})
	go func() {
		for {
			if c.counter.Hits()["stop"] > 0 {
				c.redis.Stop()
				close(stopped)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	r := c.build(d, dir, "-t", "midway")
	if r.err != nil {
		t.Fatalf("build with redis gone midway: %v\n%s", r.err, r.stderr)
	}
	<-stopped
	checkRedisWarnings(t, warnings(r.stderr))
}

// warnings returns the warning messages of a rawjson progress.
func warnings(out string) []string {
	var ws []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Warning *struct {
				Message string `json:"message"`
			} `json:"warning"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Warning != nil {
			ws = append(ws, ev.Warning.Message)
		}
	}
	return ws
}

// checkRedisWarnings checks that a build with redis gone warned about it,
// once for lookups and at most once for exports.
func checkRedisWarnings(t *testing.T, ws []string) {
	t.Helper()
	var lookups, exports int
	for _, w := range ws {
		switch {
		case strings.HasPrefix(w, "cache redis: redis at redis://127.0.0.1:"):
			lookups++
		case strings.HasPrefix(w, "shared cache redis: cannot store "):
			exports++
		}
	}
	if lookups+exports == 0 || lookups > 1 || exports > 1 {
		t.Errorf("warnings about redis: %d for lookups, %d for exports; want one of each at most, and some:\n%s", lookups, exports, strings.Join(ws, "\n"))
	}
}

func TestCacheRegistryAndLocal(t *testing.T) {
	c := newCacheEnv(t)
	a := c.daemon("")
	dir := c.context(map[string]string{"lib.txt": "lib\n", "app.txt": "app\n"})
	ref := c.reg.Ref("cache/app:buildcache")
	local := filepath.Join(t.TempDir(), "cache")
	r := c.build(a, dir, "-t", "app", "--cache-to", "type=registry,ref="+ref+",mode=max", "--cache-to", "type=local,dest="+local+",mode=max")
	if r.err != nil {
		t.Fatalf("export: %v\n%s", r.err, r.stderr)
	}
	c.wantRuns("export", map[string]int{"lib": 1, "app": 1, "final": 1})
	if _, err := os.Stat(filepath.Join(local, "index.json")); err != nil {
		t.Fatalf("local cache: %v", err)
	}
	// A second export to the same places merges (nothing is lost).
	if r := c.build(a, dir, "--cache-to", "type=local,dest="+local+",mode=max"); r.err != nil {
		t.Fatalf("second export: %v\n%s", r.err, r.stderr)
	}

	for _, tt := range []struct{ name, from, source string }{
		{"registry", "type=registry,ref=" + ref, "registry"},
		{"local", "type=local,src=" + local, "local cache"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := c.daemon("")
			r := c.build(d, dir, "-t", "app", "--cache-from", tt.from)
			if r.err != nil {
				t.Fatalf("import: %v\n%s", r.err, r.stderr)
			}
			if ran := r.ranSteps(); len(ran) != 0 {
				t.Errorf("a fresh daemon with --cache-from %s ran %v", tt.from, ran)
			}
			runs := r.runSources()
			if len(runs) != 3 {
				t.Errorf("cached RUN steps %v, want 3", runs)
			}
			for name, src := range runs {
				if src != tt.source {
					t.Errorf("%s CACHED from %q, want %q", name, src, tt.source)
				}
			}
		})
	}
	c.wantRuns("imports", map[string]int{"lib": 1, "app": 1, "final": 1})
}

func TestCacheExportErrors(t *testing.T) {
	c := newCacheEnv(t)
	d := c.daemon("")
	dir := c.context(map[string]string{"lib.txt": "lib\n", "app.txt": "app\n"})
	nowhere := "127.0.0.1:1/cache/app:x"
	r := c.build(d, dir, "--cache-to", "type=registry,ref="+nowhere)
	if r.err == nil || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("export to an unreachable registry: err %v, want a failed build naming it\n%s", r.err, r.stderr)
	}
	r = c.build(d, dir, "--cache-to", "type=registry,ignore-error=true,ref="+nowhere)
	if r.err != nil {
		t.Errorf("ignore-error=true: the build failed: %v\n%s", r.err, r.stderr)
	}
	found := false
	for _, w := range warnings(r.stderr) {
		found = found || strings.Contains(w, "ignore-error=true")
	}
	if !found {
		t.Errorf("ignore-error=true: no warning about the failed export: %v", warnings(r.stderr))
	}

	for _, tt := range []struct{ flag, value, want string }{
		{"--cache-to", "type=s3,bucket=x", `--cache-to: unknown cache type "s3" (valid types: inline, local, registry)`},
		{"--cache-to", "type=registry,ref=" + nowhere + ",modee=max", `--cache-to type=registry: unknown attribute "modee" (valid: compression, compression-level, force-compression, ignore-error, image-manifest, mode, oci-mediatypes, ref)`},
		{"--cache-to", "type=registry,ref=x,mode=all", `--cache-to type=registry: mode=all: want min or max`},
		{"--cache-from", "type=gha", `--cache-from: unknown cache type "gha" (valid types: local, registry)`},
		{"--cache-from", "type=local", `--cache-from type=local: src is required (src=DIRECTORY)`},
	} {
		r := c.build(d, dir, tt.flag, tt.value)
		if r.err == nil || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%s %s: err %v, want %q in:\n%s", tt.flag, tt.value, r.err, tt.want, tail(r.stderr, 600))
		}
	}
}
