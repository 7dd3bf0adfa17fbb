package engine

import (
	"context"
	"sync"
	"time"

	"github.com/kiln-build/kiln/progress"
)

// statusLinger is how long a finished build's progress stays for Status:
// a client that asks for it just as the build ends still gets it.
const statusLinger = 5 * time.Second

// Status writes the progress of the build ref to w: what it reported so
// far, then each event as it comes, until the build ends. It waits for a
// build that has not started yet (BuildKit's clients ask for a build's
// status as they start it) until ctx ends, and returns context.Cause(ctx)
// then. A build that ended moments ago is replayed whole.
func (e *Engine) Status(ctx context.Context, ref string, w progress.Writer) error {
	return e.running.follow(ctx, ref, w)
}

// running keeps the progress of the builds in flight, by ref, for Status.
type running struct {
	mu     sync.Mutex
	builds map[string]*buildLog
	// started is closed and replaced whenever a build starts, to wake
	// followers waiting for one.
	started chan struct{}
}

func newRunning() *running {
	return &running{builds: map[string]*buildLog{}, started: make(chan struct{})}
}

// buildLog is one build's progress: every event so far and the followers.
type buildLog struct {
	mu        sync.Mutex
	events    []progress.Event
	followers map[*follower]struct{}
	done      chan struct{}
	next      progress.Writer // the build's own writer
}

type follower struct {
	w progress.Writer
}

// start registers the build ref and returns the writer its progress goes
// to: pw, and the build's log. A build without a ref is not followed.
func (r *running) start(ref string, pw progress.Writer) progress.Writer {
	if ref == "" {
		return pw
	}
	l := &buildLog{followers: map[*follower]struct{}{}, done: make(chan struct{}), next: pw}
	r.mu.Lock()
	r.builds[ref] = l
	close(r.started)
	r.started = make(chan struct{})
	r.mu.Unlock()
	return l
}

// finish ends the build ref: its followers return, and its log is
// dropped after statusLinger.
func (r *running) finish(ref string) {
	if ref == "" {
		return
	}
	r.mu.Lock()
	l := r.builds[ref]
	r.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	close(l.done)
	l.mu.Unlock()
	time.AfterFunc(statusLinger, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.builds[ref] == l {
			delete(r.builds, ref)
		}
	})
}

// Write implements progress.Writer: the event goes to the build's writer,
// the log and every follower.
func (l *buildLog) Write(ev progress.Event) {
	l.next.Write(ev)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
	for f := range l.followers {
		f.w.Write(ev)
	}
}

func (r *running) follow(ctx context.Context, ref string, w progress.Writer) error {
	for {
		r.mu.Lock()
		l, started := r.builds[ref], r.started
		r.mu.Unlock()
		if l != nil {
			return l.follow(ctx, w)
		}
		select {
		case <-started:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// follow replays the log to w, then hands w every new event until the
// build ends or ctx does.
func (l *buildLog) follow(ctx context.Context, w progress.Writer) error {
	f := &follower{w: w}
	l.mu.Lock()
	for _, ev := range l.events {
		w.Write(ev)
	}
	select {
	case <-l.done:
		l.mu.Unlock()
		return nil
	default:
	}
	l.followers[f] = struct{}{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.followers, f)
		l.mu.Unlock()
	}()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
