package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetrics starts two kilnd daemons with [debug] address set, sharing
// a real redis-server as their cache index, builds on them and scrapes
// /metrics between builds: each counter the issue names moves when what
// it counts happens.
func TestMetrics(t *testing.T) {
	c := newCacheEnv(t)
	debugDaemon := func() (*bldEnv, string) {
		t.Helper()
		cfg := fmt.Sprintf("[worker.oci]\n[registry.\"docker.io\"]\nmirrors = [%q]\n[registry.%q]\nhttp = true\n", c.reg.Host, c.reg.Host) +
			fmt.Sprintf("[[cache.blob]]\ntype = \"filesystem\"\npath = %q\n[[cache.registry]]\ntype = \"redis\"\nredis-addr = %q\nttl = \"24h\"\nexport = \"sync\"\n", c.blobs, c.redis.Addr) +
			"[debug]\naddress = \"127.0.0.1:0\"\n"
		e := &bldEnv{t: t, kiln: c.kiln, kilnd: c.kilnd, reg: c.reg, root: t.TempDir(), cfg: cfg}
		e.start()
		return e, debugAddr(t, e)
	}
	a, aAddr := debugDaemon()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM busybox\nCOPY in.txt /in.txt\nRUN cat /in.txt > /out.txt\nRUN sleep 0.2 && echo done >> /out.txt\n",
		"in.txt":     "one\n",
	})

	// Nothing built yet.
	m := scrape(t, aAddr)
	if v := m.value("kiln_builds_total", "status", "completed"); v != 0 {
		t.Errorf("kiln_builds_total{completed} = %v before any build", v)
	}
	for _, name := range []string{"kiln_exported_bytes_total", "kiln_gc_runs_total", "kiln_redis_errors_total", "kiln_step_queue_wait_seconds", "go_goroutines"} {
		if !m.has(name) {
			t.Errorf("/metrics has no %s", name)
		}
	}

	// A builds cold into an OCI tarball: its two RUN steps run.
	oci := filepath.Join(t.TempDir(), "out.tar")
	if r := a.build(dir, "-o", "type=oci,dest="+oci); r.err != nil {
		t.Fatalf("cold build: %v\n%s", r.err, r.stderr)
	}
	m = waitMetrics(t, aAddr, func(m metricSet) bool { return m.value("kiln_builds_total", "status", "completed") == 1 })
	if v := m.value("kiln_steps_total", "cache", "miss"); v < 2 {
		t.Errorf("kiln_steps_total{miss} = %v after a cold build of two RUN steps", v)
	}
	if n := m.count("kiln_step_duration_seconds"); n < 2 {
		t.Errorf("kiln_step_duration_seconds has %d observations, want the two RUN steps", n)
	}
	if n := m.count("kiln_step_queue_wait_seconds"); n < 2 {
		t.Errorf("kiln_step_queue_wait_seconds has %d observations, want the two RUN steps", n)
	}
	fi, err := os.Stat(oci)
	if err != nil {
		t.Fatal(err)
	}
	if v := m.value("kiln_exported_bytes_total"); v < float64(fi.Size()) {
		t.Errorf("kiln_exported_bytes_total = %v, want at least the tarball's %d bytes", v, fi.Size())
	}

	// Again: every step from the local cache.
	if r := a.build(dir); r.err != nil {
		t.Fatalf("rebuild: %v\n%s", r.err, r.stderr)
	}
	m = waitMetrics(t, aAddr, func(m metricSet) bool { return m.value("kiln_builds_total", "status", "completed") == 2 })
	if v := m.value("kiln_steps_total", "cache", "local"); v < 2 {
		t.Errorf("kiln_steps_total{local} = %v after a rebuild", v)
	}
	if v := m.value("kiln_cache_hit_ratio", "cache", "local"); v <= 0 || v >= 1 {
		t.Errorf("kiln_cache_hit_ratio{local} = %v after a cold build and a cached one", v)
	}

	// B shares A's Redis index: its build comes from there.
	b, bAddr := debugDaemon()
	if r := b.build(dir); r.err != nil {
		t.Fatalf("B: %v\n%s", r.err, r.stderr)
	}
	m = waitMetrics(t, bAddr, func(m metricSet) bool { return m.value("kiln_builds_total", "status", "completed") == 1 })
	if v := m.value("kiln_steps_total", "cache", "redis"); v < 2 {
		t.Errorf("B: kiln_steps_total{redis} = %v, want its RUN steps from the shared cache", v)
	}
	if v := m.value("kiln_cache_hit_ratio", "cache", "shared"); v <= 0 {
		t.Errorf("B: kiln_cache_hit_ratio{shared} = %v", v)
	}
	if v := m.value("kiln_redis_errors_total"); v != 0 {
		t.Errorf("B: kiln_redis_errors_total = %v with Redis up", v)
	}

	// Redis goes away: B's next build still works and counts the errors.
	c.redis.Stop()
	writeFiles(t, dir, map[string]string{"in.txt": "two\n"})
	if r := b.build(dir); r.err != nil {
		t.Fatalf("B with Redis down: %v\n%s", r.err, r.stderr)
	}
	m = waitMetrics(t, bAddr, func(m metricSet) bool { return m.value("kiln_builds_total", "status", "completed") == 2 })
	if v := m.value("kiln_redis_errors_total"); v < 1 {
		t.Errorf("B: kiln_redis_errors_total = %v after a build with Redis down", v)
	}

	// A prune is a gc run.
	if out, err := a.kilnCmd(context.Background(), "prune", "-f", "--all").CombinedOutput(); err != nil {
		t.Fatalf("kiln prune: %v\n%s", err, out)
	}
	m = scrape(t, aAddr)
	if v := m.value("kiln_gc_runs_total"); v < 1 {
		t.Errorf("kiln_gc_runs_total = %v after kiln prune", v)
	}
	if v := m.value("kiln_gc_removed_bytes_total"); v <= 0 {
		t.Errorf("kiln_gc_removed_bytes_total = %v after kiln prune --all", v)
	}

	// Go's profiles.
	body := get(t, "http://"+aAddr+"/debug/pprof/goroutine?debug=1")
	if !strings.Contains(body, "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine: %.200s", body)
	}
}

// debugAddr reads the debug listener's address from kilnd's log (the
// configuration asks for port 0).
func debugAddr(t *testing.T, e *bldEnv) string {
	t.Helper()
	re := regexp.MustCompile(`debug listener.* address=(127\.0\.0\.1:[0-9]+)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(e.d.Stderr()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("kilnd logged no debug listener address:\n%s", e.d.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// metricSet is one scrape of /metrics, by family name.
type metricSet map[string]*dto.MetricFamily

func scrape(t *testing.T, addr string) metricSet {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(get(t, "http://"+addr+"/metrics")))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// waitMetrics scrapes addr until cond holds (finished builds reach the
// metrics just after the client sees them end).
func waitMetrics(t *testing.T, addr string, cond func(metricSet) bool) metricSet {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrape(t, addr)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics did not reach the expected state:\n%v", m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m metricSet) has(name string) bool { return m[name] != nil }

// value is the sum of name's counters or gauges whose labels include
// the label/value pairs kv.
func (m metricSet) value(name string, kv ...string) float64 {
	var sum float64
	for _, s := range m.matching(name, kv) {
		switch {
		case s.Counter != nil:
			sum += s.Counter.GetValue()
		case s.Gauge != nil:
			sum += s.Gauge.GetValue()
		}
	}
	return sum
}

// count is the number of observations of histogram name.
func (m metricSet) count(name string, kv ...string) uint64 {
	var n uint64
	for _, s := range m.matching(name, kv) {
		if s.Histogram != nil {
			n += s.Histogram.GetSampleCount()
		}
	}
	return n
}

func (m metricSet) matching(name string, kv []string) []*dto.Metric {
	f := m[name]
	if f == nil {
		return nil
	}
	var out []*dto.Metric
	for _, s := range f.Metric {
		ok := true
		for i := 0; i+1 < len(kv); i += 2 {
			found := false
			for _, l := range s.Label {
				if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}
