package sched

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// Config is the admission policy (kilnd.toml [worker.oci]).
type Config struct {
	// MaxParallelism caps the steps that run at once; 0: no cap.
	MaxParallelism int
	// CPUs is the number of CPUs steps share; 0: runtime.NumCPU().
	CPUs int
	// CPUPressure, MemoryPressure and IOPressure are the highest
	// pressures (PSI "some" over the last second, in percent) at which a
	// new step still starts; 0 turns the check off.
	CPUPressure, MemoryPressure, IOPressure float64
	// MemoryReserve is the memory (bytes) that must stay available after
	// a new step takes what it may need.
	MemoryReserve int64
	// Interval is how often the machine is sampled while steps wait; 0:
	// 50 ms.
	Interval time.Duration
}

// Reasons a step waits, as Stats and Reason report them.
const (
	ReasonMaxParallelism = "max-parallelism"
	ReasonCPU            = "cpu"
	ReasonCPUPressure    = "cpu-pressure"
	ReasonMemory         = "memory"
	ReasonMemoryPressure = "memory-pressure"
	ReasonIOPressure     = "io-pressure"
	// ReasonMeasuring: a running step has not been measured long enough
	// to know how fast its memory grows.
	ReasonMeasuring = "measuring"
)

// Tuning of the rules; see the package documentation.
const (
	// cpuSlack is how far the running steps' measured CPU use may exceed
	// what leaves a CPU free (measurement noise over short intervals).
	cpuSlack = 0.25
	// pressureWindow is the span pressure and memory growth are measured
	// over; minWindow the least span that gives a figure.
	pressureWindow = time.Second
	minWindow      = 250 * time.Millisecond
	// growthHorizon is how far ahead the running steps' memory growth is
	// projected.
	growthHorizon = 5 * time.Second
	// growingShare: a step whose memory grows by more than
	// 1/growingShare of the machine's a second (minGrowing at least)
	// holds every new step until it stops growing: no projection can
	// tell where it ends (four steps that each fill 40% of the memory
	// slowly all fit any projection at first, and are killed later).
	growingShare = 1024
	minGrowing   = 8 << 20
	// measureFor is how long a running step must have been measured
	// (seen in samples this far apart) before another step starts
	// beside it: by then a step that fills memory has been seen growing.
	// (20 ms, not more: every step that starts beside others waits this
	// long after the one before it, which four sleep steps pay three
	// times; a step's process runs within a few ms of its cgroup's first
	// CPU time, and fills memory at hundreds of MB/s if it fills it.)
	// measureTick is how often the Scheduler samples while it waits for
	// that. unseenFor is how long after its admission a step whose
	// cgroup has not run anything yet holds the next one (a step that
	// prepares its snapshots, or commits them after its container ended,
	// has no cgroup).
	measureFor  = 20 * time.Millisecond
	measureTick = 5 * time.Millisecond
	unseenFor   = 2 * time.Second
	// memoryTickFor is how long a memory hold is sampled every
	// measureTick before the Scheduler falls back to its interval (a step
	// that really fills memory may hold others for long).
	memoryTickFor = 250 * time.Millisecond
	// recentFor is how long a finished step's memory counts as what a
	// new step may need.
	recentFor = 30 * time.Second
)

// Scheduler admits steps. It is safe for concurrent use.
type Scheduler struct {
	cfg Config
	src Source

	mu      sync.Mutex
	running int
	queue   []*waiter
	samples []Sample // oldest first, the last pressureWindow or so
	// live holds the running steps' admission times: the newest sample's
	// time when they were admitted (zero until there is a sample).
	live map[*waiter]time.Time
	held string // why the first waiting step waits now
	// heldSince is when held took its value (wall time): a memory hold
	// that just began is sampled every measureTick (see loop).
	heldSince time.Time
	recent    map[string]recentStep
	sampling  bool
	stats     Stats
}

type waiter struct {
	ready    chan struct{}
	admitted bool
}

type recentStep struct {
	memory int64
	seen   time.Time
}

// Stats are the Scheduler's counters.
type Stats struct {
	Running, Waiting int
	// Admitted counts steps started; Held counts, by reason, the times
	// the first waiting step was kept waiting.
	Admitted uint64
	Held     map[string]uint64
	// WaitCounts[i] counts the admitted steps that waited at most
	// WaitBounds[i] (and more than the bound before); the last one those
	// that waited longer than every bound. WaitSum is their total wait.
	WaitCounts []uint64
	WaitSum    time.Duration
}

// WaitBounds are the upper bounds of Stats.WaitCounts.
var WaitBounds = []time.Duration{
	time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
}

// New returns a Scheduler measuring with src.
func New(cfg Config, src Source) *Scheduler {
	if cfg.CPUs <= 0 {
		cfg.CPUs = runtime.NumCPU()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 50 * time.Millisecond
	}
	return &Scheduler{cfg: cfg, src: src, recent: map[string]recentStep{}, live: map[*waiter]time.Time{}, stats: Stats{Held: map[string]uint64{}, WaitCounts: make([]uint64, len(WaitBounds)+1)}}
}

// Acquire blocks until a step may start, or ctx ends (the error is then
// context.Cause(ctx)). It returns how long the step waited and the
// function that ends the step's admission; call it exactly once.
func (s *Scheduler) Acquire(ctx context.Context) (release func(), waited time.Duration, err error) {
	start := time.Now()
	w := &waiter{ready: make(chan struct{})}
	s.mu.Lock()
	s.queue = append(s.queue, w)
	if s.running > 0 && !s.sampling && s.stale(start) {
		// A decision needs a measurement; take one now rather than
		// wait for the loop.
		s.mu.Unlock()
		smp, serr := s.src.Sample()
		s.mu.Lock()
		if serr == nil {
			s.addLocked(smp)
		}
	}
	s.dispatchLocked()
	if !w.admitted && !s.sampling {
		s.sampling = true
		go s.loop()
	}
	s.mu.Unlock()

	select {
	case <-w.ready:
		waited := time.Since(start)
		s.mu.Lock()
		i := 0
		for i < len(WaitBounds) && waited > WaitBounds[i] {
			i++
		}
		s.stats.WaitCounts[i]++
		s.stats.WaitSum += waited
		s.mu.Unlock()
		return s.releaser(w), waited, nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		if w.admitted {
			// Admitted as ctx ended: give the admission back.
			s.releaseLocked(w)
		} else {
			s.removeLocked(w)
		}
		return nil, time.Since(start), context.Cause(ctx)
	}
}

// Stats returns the counters.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Running, st.Waiting = s.running, len(s.queue)
	st.WaitCounts = append([]uint64(nil), s.stats.WaitCounts...)
	st.Held = make(map[string]uint64, len(s.stats.Held))
	for k, v := range s.stats.Held {
		st.Held[k] = v
	}
	return st
}

func (s *Scheduler) releaser(w *waiter) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.running--
			delete(s.live, w)
			if len(s.queue) > 0 && len(s.samples) > 0 {
				// The last sample still shows the step that just ended
				// using its CPU: measure again before deciding, rather
				// than hold the next step until the loop's next tick.
				s.mu.Unlock()
				smp, err := s.src.Sample()
				s.mu.Lock()
				if err == nil {
					s.addLocked(smp)
				}
			}
			s.dispatchLocked()
		})
	}
}

func (s *Scheduler) releaseLocked(w *waiter) {
	s.running--
	delete(s.live, w)
	s.dispatchLocked()
}

func (s *Scheduler) removeLocked(w *waiter) {
	for i, q := range s.queue {
		if q == w {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			return
		}
	}
}

// stale reports whether the newest sample is too old to decide on.
func (s *Scheduler) stale(now time.Time) bool {
	return len(s.samples) == 0 || now.Sub(s.samples[len(s.samples)-1].Time) > s.cfg.Interval
}

// dispatchLocked admits waiting steps, first come first served, while
// the rules allow.
func (s *Scheduler) dispatchLocked() {
	held, admitted := s.held, false
	s.held = ""
	for len(s.queue) > 0 {
		if reason := s.reasonLocked(); reason != "" {
			s.stats.Held[reason]++
			s.held = reason
			if reason != held || admitted {
				s.heldSince = time.Now()
			}
			return
		}
		admitted = true
		w := s.queue[0]
		s.queue = s.queue[1:]
		w.admitted = true
		var at time.Time
		if n := len(s.samples); n > 0 {
			at = s.samples[n-1].Time
		}
		s.live[w] = at
		s.running++
		s.stats.Admitted++
		close(w.ready)
	}
}

// loop samples while steps wait: every interval, or every measureTick
// while the first waiting step waits for a running one to be measured,
// or has been held for memory less than memoryTickFor (a step that just
// started grows by its program's pages for a few ms, which can look like
// filling memory: the hold is then over a few samples later).
func (s *Scheduler) loop() {
	for {
		s.mu.Lock()
		next := s.cfg.Interval
		if s.held == ReasonMeasuring || s.held == ReasonMemory && time.Since(s.heldSince) < memoryTickFor {
			next = min(next, measureTick)
		}
		s.mu.Unlock()
		time.Sleep(next)
		smp, err := s.src.Sample()
		s.mu.Lock()
		if err == nil {
			s.addLocked(smp)
		}
		s.dispatchLocked()
		if len(s.queue) == 0 {
			s.sampling = false
			s.samples = nil
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// addLocked keeps smp, drops samples older than the windows need, and
// remembers the memory of steps that finished.
func (s *Scheduler) addLocked(smp Sample) {
	if n := len(s.samples); n > 0 {
		prev := s.samples[n-1]
		for name, st := range prev.Steps {
			if _, ok := smp.Steps[name]; !ok {
				s.recent[name] = recentStep{memory: st.Memory, seen: prev.Time}
			}
		}
	}
	for name, r := range s.recent {
		if smp.Time.Sub(r.seen) > recentFor {
			delete(s.recent, name)
		}
	}
	for w, at := range s.live {
		if at.IsZero() {
			s.live[w] = smp.Time
		}
	}
	s.samples = append(s.samples, smp)
	cut := 0
	for cut < len(s.samples)-2 && smp.Time.Sub(s.samples[cut+1].Time) >= pressureWindow {
		cut++
	}
	s.samples = s.samples[cut:]
}
