package sched

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestMemoryHungryBuild: steps that each fill 40% of the machine's
// memory, and are seen only as they grow, all complete without the
// steps ever holding more than the machine has. All four at once, or
// two admitted before either was measured, would not fit.
func TestMemoryHungryBuild(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		total  int64 // the machine's memory
		growth int64 // bytes per second
		cores  float64
	}{
		{"fast, CPU-bound", 24 << 30, 4 << 30, 1},
		{"fast, on a busy machine", 24 << 30, 4 << 30, 0.3},
		{"slow", 24 << 30, 1 << 30, 0.5},
		{"slow and steady", 4 << 30, 60 << 20, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const steps = 4
			total := tt.total
			h := newFakeHost()
			h.total, h.done = total, make(chan string, steps)
			s := newTest(Config{MemoryReserve: total / 10, MemoryPressure: 10}, h)
			var mu sync.Mutex
			releases := map[string]func(){}
			for i := 0; i < steps; i++ {
				go func() {
					rel, _, err := s.Acquire(t.Context())
					if err != nil {
						return
					}
					name := fmt.Sprint(i)
					mu.Lock()
					releases[name] = rel
					mu.Unlock()
					// Its container starts and fills memory.
					h.set(func(f *fakeHost) {
						f.steps[name] = &fakeStep{cores: tt.cores, growth: tt.growth, until: total * 4 / 10}
					})
				}()
			}
			// Time passes while nothing waits, and the Scheduler
			// samples nothing.
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
						if s.Stats().Waiting == 0 {
							_, _ = h.Sample()
						}
					}
				}
			}()
			for i := 0; i < steps; i++ {
				select {
				case name := <-h.done:
					h.set(func(f *fakeHost) { delete(f.steps, name) })
					mu.Lock()
					rel := releases[name]
					mu.Unlock()
					rel()
				case <-time.After(10 * time.Second):
					t.Fatalf("%d of %d steps completed; held %v", i, steps, s.Stats().Held)
				}
			}
			if h.used > total {
				t.Errorf("the steps held %.1f GiB at once, the machine has %.1f", float64(h.used)/(1<<30), float64(total)/(1<<30))
			}
			if s.Stats().Held[ReasonMeasuring] == 0 {
				t.Errorf("held %v, want for measuring", s.Stats().Held)
			}
		})
	}
}

// TestMeasuring: a step starts beside a running one only once the
// running one has been measured.
func TestMeasuring(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps map[string]*fakeStep
		want  bool // measuring holds the second step
	}{
		{"no cgroup yet", map[string]*fakeStep{}, true},
		{"a cgroup that ran nothing yet", map[string]*fakeStep{"a": {}}, true},
		{"seen once", map[string]*fakeStep{"a": {cores: 0.1}}, true},
		{"seen long enough", map[string]*fakeStep{"a": {cores: 0.1}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newFakeHost()
			h.steps = tt.steps
			s := New(Config{CPUs: 2, Interval: time.Hour}, h)
			s.running = 1
			s.live[&waiter{}] = time.Time{}
			s.addLocked(must(h.Sample()))
			if !tt.want {
				s.addLocked(must(h.Sample()))
			}
			if got := s.reasonLocked() == ReasonMeasuring; got != tt.want {
				t.Errorf("held for measuring: %v, want %v (reason %q)", got, tt.want, s.reasonLocked())
			}
		})
	}
	t.Run("no cgroup for long", func(t *testing.T) {
		// An admitted step still without a cgroup after unseenFor (it
		// prepares snapshots, or commits them) no longer holds others.
		h := newFakeHost()
		s := New(Config{CPUs: 2, Interval: time.Hour}, h)
		s.running = 1
		s.live[&waiter{}] = time.Time{}
		for i := 0; i <= int(unseenFor/h.tick); i++ {
			s.addLocked(must(h.Sample()))
		}
		if r := s.reasonLocked(); r != "" {
			t.Errorf("held for %q", r)
		}
	})
}

// TestCPUDemandCountsWaiting: two steps that each get 0.6 of a CPU on a
// busy machine, and wait the rest, want both CPUs: a third waits.
func TestCPUDemandCountsWaiting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		cores, stall float64
		want         string
	}{
		{"waiting for CPUs", 0.6, 0.4, ReasonCPU},
		{"half idle", 0.6, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newFakeHost()
			h.steps = map[string]*fakeStep{"a": {cores: tt.cores, stall: tt.stall}, "b": {cores: tt.cores, stall: tt.stall}}
			s := New(Config{CPUs: 2, Interval: time.Hour}, h)
			s.running = 2
			s.addLocked(must(h.Sample()))
			s.addLocked(must(h.Sample()))
			if r := s.reasonLocked(); r != tt.want {
				t.Errorf("reason %q, want %q", r, tt.want)
			}
		})
	}
}

func must(s Sample, err error) Sample {
	if err != nil {
		panic(err)
	}
	return s
}
