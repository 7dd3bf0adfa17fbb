package disk

import (
	"context"
	"sync"
	"time"
)

// passes runs a function in passes that never overlap and that coalesce:
// Request asks for a pass that starts after the request; requests made
// while a pass runs are all served by the one next pass. It is the
// automatic gc's trigger: every build asks for a pass when it ends, and
// a burst of builds ending together costs two scans, not one per build.
type passes struct {
	run func(ctx context.Context)

	mu      sync.Mutex
	base    context.Context // canceled by stop
	cancel  context.CancelFunc
	next    chan struct{} // closed when the next (not yet started) pass ends; nil: none asked for
	running bool
	stopped bool
	wg      sync.WaitGroup
}

func newPasses(run func(ctx context.Context)) *passes {
	ctx, cancel := context.WithCancel(context.Background())
	return &passes{run: run, base: ctx, cancel: cancel}
}

// Request asks for a pass and returns a channel closed when a pass that
// started after this call has ended (at once after stop).
func (p *passes) Request() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		done := make(chan struct{})
		close(done)
		return done
	}
	if p.next == nil {
		p.next = make(chan struct{})
	}
	done := p.next
	if !p.running {
		p.running = true
		p.wg.Add(1)
		go p.loop()
	}
	return done
}

// loop runs passes while some are asked for.
func (p *passes) loop() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		done := p.next
		if done == nil || p.stopped {
			p.running = false
			if done != nil {
				close(done)
				p.next = nil
			}
			p.mu.Unlock()
			return
		}
		p.next = nil
		p.mu.Unlock()
		p.run(p.base)
		close(done)
	}
}

// stop cancels the running pass, waits for it and makes later requests
// return at once.
func (p *passes) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

// every asks for a pass every d until stop (the time-based trigger).
func (p *passes) every(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-p.base.Done():
				return
			case <-t.C:
				p.Request()
			}
		}
	}()
}
