package sched

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeHost is a machine in virtual time: every Sample advances the clock
// by tick, and each step's counters move at its rates.
type fakeHost struct {
	mu        sync.Mutex
	now       time.Time
	tick      time.Duration
	steps     map[string]*fakeStep
	avail     int64
	cpuStall  float64 // fraction of time the steps wait for a CPU
	memStall  float64
	cpu, mem  time.Duration
	noPSI     bool
	unmetered bool
	// total, when set, is the machine's memory: available is total less
	// what the steps hold, and used the most they held at once.
	total, used int64
	// done receives the names of steps that reached their until.
	done chan string
}

type fakeStep struct {
	cores  float64 // CPUs used
	stall  float64 // CPUs waited for
	cpu    time.Duration
	wait   time.Duration
	memory int64
	growth int64 // bytes per second
	until  int64 // the step ends when it holds this much (0: never)
	ended  bool
}

func newFakeHost() *fakeHost {
	return &fakeHost{now: time.Unix(1000, 0), tick: 100 * time.Millisecond, steps: map[string]*fakeStep{}, avail: 20 << 30}
}

func (f *fakeHost) Sample() (Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(f.tick)
	s := Sample{Time: f.now, MemAvailable: f.avail, PressureKnown: !f.noPSI, StepsCPUStall: true}
	if !f.unmetered {
		s.Steps = map[string]StepSample{}
	}
	f.cpu += time.Duration(f.cpuStall * float64(f.tick))
	f.mem += time.Duration(f.memStall * float64(f.tick))
	s.CPUStall, s.MemoryStall = f.cpu, f.mem
	s.CPUAvg10, s.MemoryAvg10 = 100*f.cpuStall, 100*f.memStall
	held := int64(0)
	for name, st := range f.steps {
		st.cpu += time.Duration(st.cores * float64(f.tick))
		st.wait += time.Duration(st.stall * float64(f.tick))
		st.memory += int64(float64(st.growth) * f.tick.Seconds())
		if st.until > 0 && st.memory >= st.until && !st.ended {
			st.memory, st.ended = st.until, true
			f.done <- name
		}
		held += st.memory
		if s.Steps != nil {
			s.Steps[name] = StepSample{CPU: st.cpu, CPUStall: st.wait, Memory: st.memory}
		}
	}
	if f.total > 0 {
		f.used = max(f.used, held)
		s.MemAvailable, s.MemTotal = f.total-held, f.total
	}
	return s, nil
}

func (f *fakeHost) set(fn func(f *fakeHost)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// started is an admitted step: its release.
type started struct {
	release func()
}

// acquireAsync asks for n admissions in order and returns a channel of
// admissions in the order they come.
func acquireAsync(t *testing.T, s *Scheduler, n int) <-chan started {
	t.Helper()
	out := make(chan started, n)
	ready := make(chan struct{})
	ctx := t.Context() // cancelled when the test ends, with steps still waiting
	go func() {
		for i := 0; i < n; i++ {
			i := i
			queued := make(chan struct{})
			go func() {
				close(queued)
				rel, _, err := s.Acquire(ctx)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Acquire %d: %v", i, err)
					}
					return
				}
				out <- started{rel}
			}()
			<-queued
			// Let each ask queue before the next one.
			waitFor(t, func() bool { st := s.Stats(); return st.Running+st.Waiting > i })
		}
		close(ready)
	}()
	<-ready
	return out
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// settle lets the scheduler sample a few times.
func settle(s *Scheduler) { time.Sleep(20 * s.cfg.Interval) }

// admitted returns the admissions that came since the last call: those
// that reach ch before it stays quiet for 60 ms (an admitted step's
// goroutine sends at once).
func admitted(ch <-chan started) []started {
	var out []started
	for {
		select {
		case a := <-ch:
			out = append(out, a)
		case <-time.After(60 * time.Millisecond):
			return out
		}
	}
}

func newTest(cfg Config, h *fakeHost) *Scheduler {
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	cfg.Interval = time.Millisecond
	return New(cfg, h)
}

func TestSleepingStepsHoldNoCPU(t *testing.T) {
	t.Parallel()
	h := newFakeHost()
	s := newTest(Config{}, h)
	ch := acquireAsync(t, s, 4)
	// Two start at once: nothing is measured yet, each counts as a CPU.
	if got := len(admitted(ch)); got != 2 {
		t.Fatalf("%d admitted at once, want 2 (the CPUs)", got)
	}
	// Their containers sleep.
	h.set(func(f *fakeHost) { f.steps["a"], f.steps["b"] = &fakeStep{}, &fakeStep{} })
	waitFor(t, func() bool { return s.Stats().Running == 4 })
	if st := s.Stats(); st.Waiting != 0 || st.Admitted != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestCPUBoundStepsWait(t *testing.T) {
	t.Parallel()
	h := newFakeHost()
	s := newTest(Config{}, h)
	ch := acquireAsync(t, s, 3)
	first := admitted(ch)
	h.set(func(f *fakeHost) { f.steps["a"], f.steps["b"] = &fakeStep{cores: 1}, &fakeStep{cores: 0.95} })
	settle(s)
	if n := len(admitted(ch)); len(first) != 2 || n != 0 {
		t.Fatalf("admitted %d then %d, want 2 then 0 while both use a CPU", len(first), n)
	}
	if s.Stats().Held[ReasonCPU] == 0 {
		t.Errorf("held %v, want for cpu", s.Stats().Held)
	}
	// One finishes: the third starts.
	h.set(func(f *fakeHost) { delete(f.steps, "a") })
	first[0].release()
	waitFor(t, func() bool { return len(admitted(ch)) == 1 })
}

func TestMaxParallelismCaps(t *testing.T) {
	t.Parallel()
	h := newFakeHost()
	s := newTest(Config{MaxParallelism: 3, CPUs: 8}, h)
	ch := acquireAsync(t, s, 5)
	h.set(func(f *fakeHost) {
		for i := 0; i < 3; i++ {
			f.steps[fmt.Sprint(i)] = &fakeStep{}
		}
	})
	settle(s)
	got := admitted(ch)
	if len(got) != 3 {
		t.Fatalf("%d admitted, want the cap of 3", len(got))
	}
	if s.Stats().Held[ReasonMaxParallelism] == 0 {
		t.Errorf("held %v", s.Stats().Held)
	}
	got[0].release()
	waitFor(t, func() bool { return len(admitted(ch)) == 1 })
}

func TestMemory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps map[string]*fakeStep
		avail int64
		want  bool // a third step starts
	}{
		{"room for one more like them", map[string]*fakeStep{"a": {memory: 4 << 30}, "b": {memory: 4 << 30}}, 12 << 30, true},
		{"no room for one more like them", map[string]*fakeStep{"a": {memory: 9 << 30}, "b": {memory: 9 << 30}}, 3 << 30, false},
		{"still growing fast", map[string]*fakeStep{"a": {memory: 2 << 30, growth: 3 << 30}, "b": {}}, 8 << 30, false},
		{"growing steadily", map[string]*fakeStep{"a": {memory: 1 << 30, growth: 50 << 20}, "b": {}}, 10 << 30, false},
		{"growing a little", map[string]*fakeStep{"a": {memory: 1 << 30, growth: 4 << 20}, "b": {}}, 10 << 30, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newFakeHost()
			h.avail = tt.avail
			s := newTest(Config{MemoryReserve: 1 << 30}, h)
			ch := acquireAsync(t, s, 3)
			if len(admitted(ch)) != 2 {
				t.Fatal("the first two did not start")
			}
			h.set(func(f *fakeHost) { f.steps = tt.steps })
			settle(s)
			if got := len(admitted(ch)) == 1; got != tt.want {
				t.Errorf("third started: %v, want %v (held %v)", got, tt.want, s.Stats().Held)
			}
		})
	}
}

// TestFinishedStepMemoryCounts: a step that held 9 GiB and ended still
// says what the next step may need.
func TestFinishedStepMemoryCounts(t *testing.T) {
	t.Parallel()
	h := newFakeHost()
	h.avail = 3 << 30
	s := newTest(Config{MemoryReserve: 1 << 30}, h)
	ch := acquireAsync(t, s, 4)
	first := admitted(ch)
	h.set(func(f *fakeHost) { f.steps["a"], f.steps["b"] = &fakeStep{memory: 9 << 30}, &fakeStep{memory: 9 << 30} })
	settle(s)
	if n := len(admitted(ch)); n != 0 {
		t.Fatalf("%d started with 3 GiB available", n)
	}
	h.set(func(f *fakeHost) { delete(f.steps, "a"); f.avail = 12 << 30 })
	first[0].release()
	waitFor(t, func() bool { return s.Stats().Running == 2 })
	settle(s)
	// 12 GiB available, the next may need 9, 1 reserved: only one more.
	if n := len(admitted(ch)); n != 1 {
		t.Errorf("%d more started, want 1", n)
	}
}

func TestPressure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cpus     int
		cpu, mem float64
		noPSI    bool
		want     string
	}{
		{"cpu", 1, 0.8, 0, false, ReasonCPUPressure},
		// Fewer steps than CPUs: the pressure is someone else's, and a
		// fixed count of CPUs would start the next step.
		{"cpu, a step on 8 CPUs", 8, 0.8, 0, false, ""},
		{"memory", 8, 0, 0.3, false, ReasonMemoryPressure},
		{"calm", 8, 0.1, 0.01, false, ""},
		{"no psi", 8, 0.9, 0.9, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newFakeHost()
			h.cpuStall, h.memStall, h.noPSI = tt.cpu, tt.mem, tt.noPSI
			s := newTest(Config{CPUs: tt.cpus, CPUPressure: 50, MemoryPressure: 10}, h)
			ch := acquireAsync(t, s, 2)
			h.set(func(f *fakeHost) { f.steps["a"] = &fakeStep{} })
			settle(s)
			n := len(admitted(ch))
			if tt.want == "" {
				if n != 2 {
					t.Errorf("%d admitted, want 2", n)
				}
				return
			}
			if n != 1 || s.Stats().Held[tt.want] == 0 {
				t.Errorf("%d admitted, held %v; want 1, held for %s", n, s.Stats().Held, tt.want)
			}
		})
	}
}

// TestUnmeteredCountsSteps: without cgroups, every running step counts
// as a CPU, as a fixed count of CPUs would.
func TestUnmeteredCountsSteps(t *testing.T) {
	t.Parallel()
	h := newFakeHost()
	h.unmetered = true
	s := newTest(Config{}, h)
	ch := acquireAsync(t, s, 3)
	settle(s)
	if n := len(admitted(ch)); n != 2 {
		t.Errorf("%d admitted, want 2", n)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	t.Parallel()
	h := newFakeHost()
	s := newTest(Config{MaxParallelism: 1}, h)
	rel, _, err := s.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cause := errors.New("build cancelled")
	ctx, cancel := context.WithCancelCause(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Acquire(ctx)
		done <- err
	}()
	waitFor(t, func() bool { return s.Stats().Waiting == 1 })
	cancel(cause)
	if err := <-done; !errors.Is(err, cause) {
		t.Errorf("Acquire: %v, want the cause", err)
	}
	if st := s.Stats(); st.Waiting != 0 || st.Running != 1 {
		t.Errorf("stats %+v", st)
	}
	rel()
	rel() // a second call does nothing
	if st := s.Stats(); st.Running != 0 {
		t.Errorf("running %d after release", st.Running)
	}
}

func TestFirstComeFirstServed(t *testing.T) {
	t.Parallel()
	h := newFakeHost()
	s := newTest(Config{MaxParallelism: 1}, h)
	rel, _, err := s.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 3)
	for i := 0; i < 3; i++ {
		go func() {
			r, _, err := s.Acquire(t.Context())
			if err == nil {
				order <- i
				r()
			}
		}()
		waitFor(t, func() bool { return s.Stats().Waiting == i+1 })
	}
	rel()
	for want := 0; want < 3; want++ {
		if got := <-order; got != want {
			t.Fatalf("admitted %d, want %d", got, want)
		}
	}
}

// TestReleaseMeasuresAgain: when a CPU-bound step ends, the next one
// starts at once, not at the sampling loop's next tick (an hour here).
func TestReleaseMeasuresAgain(t *testing.T) {
	t.Parallel()
	h := newFakeHost()
	s := New(Config{CPUs: 2, Interval: time.Hour}, h)
	h.set(func(f *fakeHost) { f.steps["a"], f.steps["b"] = &fakeStep{cores: 0.05}, &fakeStep{cores: 0.05} })
	first := admitted(acquireAsync(t, s, 2))
	if len(first) != 2 {
		t.Fatalf("%d admitted at once, want 2", len(first))
	}
	h.set(func(f *fakeHost) { f.steps["a"], f.steps["b"] = &fakeStep{cores: 1}, &fakeStep{cores: 1} })
	third := acquireAsync(t, s, 1) // measures once (stale) and waits
	waitFor(t, func() bool { return s.Stats().Waiting == 1 })
	// A second sample, as the loop would take: both steps use a CPU.
	smp, err := h.Sample()
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.addLocked(smp)
	s.dispatchLocked()
	s.mu.Unlock()
	if n := len(admitted(third)); n != 0 {
		t.Fatalf("%d admitted while two steps use both CPUs", n)
	}
	h.set(func(f *fakeHost) { delete(f.steps, "a") })
	first[0].release()
	waitFor(t, func() bool { return len(admitted(third)) == 1 })
}

// TestMemoryHoldResamplesSoon: a memory hold that just began is sampled
// every measureTick, not every interval, so a step held because the one
// before it grew for a moment (a program starting) starts as soon as the
// growth is seen to stop.
func TestMemoryHoldResamplesSoon(t *testing.T) {
	t.Parallel()
	h := newFakeHost()
	h.steps = map[string]*fakeStep{"a": {cores: 0.1, growth: 1 << 30}}
	s := New(Config{CPUs: 2, Interval: 5 * time.Second, MemoryReserve: 1 << 30}, h)
	ch := acquireAsync(t, s, 2)
	if len(admitted(ch)) != 1 {
		t.Fatal("the first step did not start")
	}
	waitFor(t, func() bool { return s.Stats().Held[ReasonMemory] > 0 })
	h.set(func(f *fakeHost) { f.steps["a"].growth = 0 })
	start := time.Now()
	select {
	case <-ch:
	case <-time.After(3 * time.Second):
		t.Fatalf("the second step still waits (held %v); the scheduler samples every %v", s.Stats().Held, s.cfg.Interval)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the second step started %v after the growth stopped", d)
	}
}
