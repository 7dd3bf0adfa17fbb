package progress

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Step is what a build's report keeps of one step.
type Step struct {
	Digest   digest.Digest   `json:"digest"`
	Name     string          `json:"name"`
	Inputs   []digest.Digest `json:"inputs,omitempty"`
	Duration time.Duration   `json:"durationNs"`
	Cached   bool            `json:"cached,omitempty"`
	// CacheSource says which cache a cached step came from ("local",
	// "redis", a --cache-from name).
	CacheSource string `json:"cacheSource,omitempty"`
	Failed      bool   `json:"failed,omitempty"`
	// Usage is set for steps that ran a container.
	Usage *Usage `json:"usage,omitempty"`
}

// Collector is a Writer that keeps each step's last status and usage, for
// a report at the end of the build. The zero value is ready to use.
type Collector struct {
	mu    sync.Mutex
	steps map[digest.Digest]*Step
	order []digest.Digest
}

var _ Writer = (*Collector)(nil)

// Write records vertex statuses and usage; it ignores logs and warnings.
func (c *Collector) Write(e Event) {
	if e.Vertex == nil && e.Usage == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d := digestOf(e)
	st, ok := c.steps[d]
	if !ok {
		if c.steps == nil {
			c.steps = map[digest.Digest]*Step{}
		}
		st = &Step{Digest: d}
		c.steps[d] = st
		c.order = append(c.order, d)
	}
	if v := e.Vertex; v != nil {
		if v.Name != "" {
			st.Name = v.Name
		}
		if len(v.Inputs) > 0 {
			st.Inputs = v.Inputs
		}
		st.Cached, st.CacheSource, st.Failed = v.Cached, v.CacheSource, v.Error != ""
		if v.Started != nil && v.Completed != nil {
			st.Duration = v.Completed.Sub(*v.Started)
		}
	}
	if u := e.Usage; u != nil {
		cp := *u
		st.Usage = &cp
	}
}

func digestOf(e Event) digest.Digest {
	if e.Vertex != nil {
		return e.Vertex.Digest
	}
	return e.Usage.Vertex
}

// step returns what the collector has of d.
func (c *Collector) step(d digest.Digest) (Step, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.steps[d]
	if !ok {
		return Step{}, false
	}
	return *st, true
}

// Steps returns the named steps in the order they were first reported.
func (c *Collector) Steps() []Step {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Step
	for _, d := range c.order {
		if st := c.steps[d]; st.Name != "" {
			cp := *st
			cp.Inputs = append([]digest.Digest(nil), st.Inputs...)
			out = append(out, cp)
		}
	}
	return out
}

// Report returns the slowest steps and the critical path of what the
// collector saw.
func (c *Collector) Report() Report { return Analyze(c.Steps()) }

// Report says where a build's time went.
type Report struct {
	// Slowest are the steps that ran (not cached), longest first; at
	// most three.
	Slowest []Step
	// CriticalPath is the chain of steps, each an input of the next,
	// whose durations add up to the most: the build could not have been
	// faster than Critical however many steps ran at once.
	CriticalPath []Step
	Critical     time.Duration
}

// maxSlowest is how many steps Report.Slowest lists.
const maxSlowest = 3

// Analyze computes the report of steps (as Collector.Steps returns them:
// a step's inputs come before it).
func Analyze(steps []Step) Report {
	var r Report
	for _, s := range steps {
		if !s.Cached && s.Duration > 0 {
			r.Slowest = append(r.Slowest, s)
		}
	}
	sort.SliceStable(r.Slowest, func(i, j int) bool { return r.Slowest[i].Duration > r.Slowest[j].Duration })
	if len(r.Slowest) > maxSlowest {
		r.Slowest = r.Slowest[:maxSlowest]
	}

	// Longest path through the graph, each step weighted by its
	// duration. Steps outside the graph (loading the Dockerfile,
	// exporting) have no edges and are left out unless nothing else
	// is there.
	index := map[digest.Digest]int{}
	linked := make([]bool, len(steps))
	for i, s := range steps {
		index[s.Digest] = i
	}
	for i, s := range steps {
		for _, in := range s.Inputs {
			if j, ok := index[in]; ok {
				linked[i], linked[j] = true, true
			}
		}
	}
	anyLinked := false
	for _, l := range linked {
		anyLinked = anyLinked || l
	}
	total := make([]time.Duration, len(steps))
	prev := make([]int, len(steps))
	best := -1
	for i, s := range steps {
		prev[i] = -1
		if anyLinked && !linked[i] {
			continue
		}
		for _, in := range s.Inputs {
			if j, ok := index[in]; ok && j < i && (prev[i] < 0 || total[j] > total[prev[i]]) {
				prev[i] = j
			}
		}
		total[i] = s.Duration
		if prev[i] >= 0 {
			total[i] += total[prev[i]]
		}
		if best < 0 || total[i] > total[best] {
			best = i
		}
	}
	for i := best; i >= 0; i = prev[i] {
		r.CriticalPath = append([]Step{steps[i]}, r.CriticalPath...)
	}
	if best >= 0 {
		r.Critical = total[best]
	}
	return r
}

// Lines renders the report for the end of plain and tty progress: the
// slowest steps with what they used, and the critical path with the step
// that weighed most on it.
func (r Report) Lines() []string {
	var out []string
	if len(r.Slowest) > 0 {
		out = append(out, "Slowest steps:")
		for _, s := range r.Slowest {
			line := fmt.Sprintf("  %6.2fs  %s", s.Duration.Seconds(), trim(s.Name, 60))
			if u := s.Usage; u != nil {
				line += "  (" + u.String() + ")"
			}
			out = append(out, line)
		}
	}
	if len(r.CriticalPath) > 0 && r.Critical > 0 {
		heaviest := r.CriticalPath[0]
		for _, s := range r.CriticalPath {
			if s.Duration > heaviest.Duration {
				heaviest = s
			}
		}
		n := len(r.CriticalPath)
		steps := "steps"
		if n == 1 {
			steps = "step"
		}
		out = append(out, fmt.Sprintf("Critical path: %.2fs over %d %s; %s took %.2fs of it",
			r.Critical.Seconds(), n, steps, trim(heaviest.Name, 50), heaviest.Duration.Seconds()))
	}
	return out
}

// String is a short form of the usage: "CPU 1.20s, peak 35 MiB, I/O 2.0 MiB
// read, 20 MiB written".
func (u Usage) String() string {
	parts := []string{fmt.Sprintf("CPU %.2fs", u.CPU.Seconds())}
	if u.MemoryPeak > 0 {
		parts = append(parts, "peak "+bytesHuman(u.MemoryPeak))
	}
	if u.IORead > 0 || u.IOWrite > 0 {
		parts = append(parts, fmt.Sprintf("I/O %s read, %s written", bytesHuman(u.IORead), bytesHuman(u.IOWrite)))
	}
	if u.OOMKilled {
		parts = append(parts, "OOM-killed")
	}
	return strings.Join(parts, ", ")
}

func bytesHuman(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
