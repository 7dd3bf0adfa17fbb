// Package metrics is kilnd's debug listener ([debug] address in
// kilnd.toml): Prometheus metrics at /metrics, made with
// github.com/prometheus/client_golang on a registry of their own, and Go's
// profiles at /debug/pprof/.
//
// The metrics are read from the engine's services rather than pushed by
// them: finished builds from the build history (its Listen stream), the
// scheduler's, gc's and the Redis indexes' counters when Prometheus
// scrapes. Nothing below the daemon knows about Prometheus.
package metrics

import (
	"context"
	"net/http"
	"net/http/pprof"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kiln-build/kiln/engine/disk"
	"github.com/kiln-build/kiln/engine/history"
	"github.com/kiln-build/kiln/sched"
)

// Sources are what the metrics read. Nil sources are left out.
type Sources struct {
	// History reports each finished build (*history.Service).
	History interface {
		Listen(ctx context.Context, o history.ListenOptions, send func(history.Event) error) error
	}
	// Scheduler admits steps (*sched.Scheduler).
	Scheduler interface{ Stats() sched.Stats }
	// GC counts prunes (*disk.Service).
	GC interface{ GCStats() disk.GCStats }
	// Exported counts the bytes exports sent out (*engine.Engine).
	Exported func() int64
	// Redis are the shared caches' indexes (*redis.Index).
	Redis []RedisIndex
}

// RedisIndex is a shared cache index that counts its errors.
type RedisIndex interface {
	Addr() string
	Errors() uint64
}

// Metrics holds kilnd's collectors.
type Metrics struct {
	reg *prometheus.Registry

	builds        *prometheus.CounterVec
	buildDuration prometheus.Histogram
	steps         *prometheus.CounterVec
	stepDuration  prometheus.Histogram
	stepCPU       prometheus.Counter
	stepIO        *prometheus.CounterVec
	stepMemory    prometheus.Histogram
	oomKills      prometheus.Counter

	mu                           sync.Mutex
	looked, localHits, remoteHit float64 // for the hit ratios
}

// New makes the collectors and starts following src.History until ctx
// ends.
func New(ctx context.Context, src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.builds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kiln_builds_total", Help: "Finished builds, by status (completed, failed, canceled).",
	}, []string{"status"})
	m.buildDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "kiln_build_duration_seconds", Help: "Wall time of finished builds.",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
	})
	m.steps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kiln_steps_total", Help: `Solved steps of finished builds, by cache status: "miss" (the step ran), "local", or the remote cache that had it ("redis", "registry", ...).`,
	}, []string{"cache"})
	m.stepDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "kiln_step_duration_seconds", Help: "Wall time of the steps that ran (cache misses).",
		Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
	})
	m.stepCPU = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kiln_step_cpu_seconds_total", Help: "CPU time of the containers of RUN steps.",
	})
	m.stepIO = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kiln_step_io_bytes_total", Help: "Storage I/O of the containers of RUN steps, by direction (read, write).",
	}, []string{"direction"})
	m.stepMemory = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "kiln_step_memory_peak_bytes", Help: "Peak memory of the containers of RUN steps.",
		Buckets: prometheus.ExponentialBuckets(1<<20, 4, 10),
	})
	m.oomKills = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kiln_step_oom_kills_total", Help: "RUN steps whose container the kernel's OOM killer hit.",
	})
	m.reg.MustRegister(m.builds, m.buildDuration, m.steps, m.stepDuration, m.stepCPU, m.stepIO, m.stepMemory, m.oomKills)
	for _, cache := range []string{"local", "shared"} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kiln_cache_hit_ratio", Help: "Share of the cache lookups of finished builds answered by a cache (local, or shared: any remote cache).",
			ConstLabels: prometheus.Labels{"cache": cache},
		}, func() float64 { return m.hitRatio(cache) }))
	}
	if src.Exported != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kiln_exported_bytes_total", Help: "Bytes exports sent out: written to client-side outputs, and the sizes of pushed images.",
		}, func() float64 { return float64(src.Exported()) }))
	}
	if src.GC != nil {
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kiln_gc_runs_total", Help: "Prunes of the build cache (automatic gc runs and kiln prune)."},
				func() float64 { return float64(src.GC.GCStats().Runs) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kiln_gc_removed_bytes_total", Help: "Bytes the prunes removed."},
				func() float64 { return float64(src.GC.GCStats().RemovedBytes) }),
		)
	}
	for _, idx := range src.Redis {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kiln_redis_errors_total", Help: "Failed calls to a shared cache's Redis index (timeouts included).",
			ConstLabels: prometheus.Labels{"redis": idx.Addr()},
		}, func() float64 { return float64(idx.Errors()) }))
	}
	if src.Scheduler != nil {
		m.reg.MustRegister(schedulerCollector{src.Scheduler})
	}
	if src.History != nil {
		go func() {
			_ = src.History.Listen(ctx, history.ListenOptions{ActiveOnly: true, Follow: true}, func(ev history.Event) error {
				if ev.Type == history.EventCompleted {
					m.observe(ev.Record)
				}
				return nil
			})
		}()
	}
	return m
}

// observe counts a finished build.
func (m *Metrics) observe(r history.Record) {
	m.builds.WithLabelValues(r.Status).Inc()
	if !r.Completed.IsZero() {
		m.buildDuration.Observe(r.Completed.Sub(r.Created).Seconds())
	}
	var looked, local, remote float64
	for _, s := range r.Trace {
		switch {
		case s.Cached && s.CacheSource != "":
			m.steps.WithLabelValues(s.CacheSource).Inc()
		case s.Cached:
			m.steps.WithLabelValues("local").Inc()
		case s.Usage == nil && s.Duration() == 0:
			continue // not a step that ran (loading the Dockerfile, exporting...)
		default:
			m.steps.WithLabelValues("miss").Inc()
			m.stepDuration.Observe(s.Duration().Seconds())
		}
		looked++
		if s.Cached {
			if s.CacheSource == "" || s.CacheSource == "local" {
				local++
			} else {
				remote++
			}
		}
		if u := s.Usage; u != nil {
			m.stepCPU.Add(u.CPU.Seconds())
			m.stepIO.WithLabelValues("read").Add(float64(u.IORead))
			m.stepIO.WithLabelValues("write").Add(float64(u.IOWrite))
			if u.MemoryPeak > 0 {
				m.stepMemory.Observe(float64(u.MemoryPeak))
			}
			if u.OOMKilled {
				m.oomKills.Inc()
			}
		}
	}
	m.mu.Lock()
	m.looked, m.localHits, m.remoteHit = m.looked+looked, m.localHits+local, m.remoteHit+remote
	m.mu.Unlock()
}

func (m *Metrics) hitRatio(cache string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.looked == 0 {
		return 0
	}
	if cache == "local" {
		return m.localHits / m.looked
	}
	return m.remoteHit / m.looked
}

// Handler serves /metrics and /debug/pprof/.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// schedulerCollector reads the scheduler's counters at each scrape.
type schedulerCollector struct {
	s interface{ Stats() sched.Stats }
}

var (
	descRunning  = prometheus.NewDesc("kiln_scheduler_running_steps", "Steps that run a container now.", nil, nil)
	descWaiting  = prometheus.NewDesc("kiln_scheduler_waiting_steps", "Steps waiting to be admitted.", nil, nil)
	descHeld     = prometheus.NewDesc("kiln_scheduler_held_total", "Times the first waiting step was kept waiting, by reason (measuring, cpu, memory, cpu-pressure, memory-pressure, io-pressure, max-parallelism).", []string{"reason"}, nil)
	descQueue    = prometheus.NewDesc("kiln_step_queue_wait_seconds", "How long steps that run a container waited to be admitted.", nil, nil)
	queueBuckets = func() []float64 {
		var b []float64
		for _, d := range sched.WaitBounds {
			b = append(b, d.Seconds())
		}
		return b
	}()
)

func (c schedulerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRunning
	ch <- descWaiting
	ch <- descHeld
	ch <- descQueue
}

func (c schedulerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(st.Running))
	ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(st.Waiting))
	for _, r := range []string{sched.ReasonMeasuring, sched.ReasonCPU, sched.ReasonMemory, sched.ReasonCPUPressure, sched.ReasonMemoryPressure, sched.ReasonIOPressure, sched.ReasonMaxParallelism} {
		ch <- prometheus.MustNewConstMetric(descHeld, prometheus.CounterValue, float64(st.Held[r]), r)
	}
	buckets := map[float64]uint64{}
	var cum, count uint64
	for i, b := range queueBuckets {
		if i < len(st.WaitCounts) {
			cum += st.WaitCounts[i]
		}
		buckets[b] = cum
	}
	for _, n := range st.WaitCounts {
		count += n
	}
	ch <- prometheus.MustNewConstHistogram(descQueue, count, st.WaitSum.Seconds(), buckets)
}
