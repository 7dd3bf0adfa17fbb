package buildkit

import (
	"context"
	"sync"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/progress"
)

// keepFinished is how long a finished build's progress stays available to
// a Status call that comes late (a client reads Status and calls Solve at
// the same time; a fast build can finish before Status arrives).
const keepFinished = time.Minute

// builds are the builds running, and those finished within keepFinished,
// by ref.
type builds struct {
	mu      sync.Mutex
	m       map[string]*build
	started chan struct{} // closed and replaced when a build starts
}

func newBuilds() *builds {
	return &builds{m: map[string]*build{}, started: make(chan struct{})}
}

// build is one Solve's progress: a progress.Writer whose events Status
// calls read from the start.
type build struct {
	ref      string
	req      *controlapi.SolveRequest
	created  time.Time
	mu       sync.Mutex
	events   []progress.Event
	changed  chan struct{} // closed and replaced on every event
	done     chan struct{} // closed by finish
	err      error
	finished time.Time
}

var _ progress.Writer = (*build)(nil)

// start registers a build. A ref that is running already is refused.
func (bs *builds) start(req *controlapi.SolveRequest) (*build, error) {
	if req.Ref == "" {
		return nil, errdefs.Invalidf("the solve request has no ref")
	}
	b := &build{ref: req.Ref, req: req, created: time.Now(), changed: make(chan struct{}), done: make(chan struct{})}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for ref, old := range bs.m {
		if old.isDone() && time.Since(old.finishedAt()) > keepFinished {
			delete(bs.m, ref)
		}
	}
	if old, ok := bs.m[req.Ref]; ok && !old.isDone() {
		return nil, errdefs.WithClass(errdefs.ErrAlreadyExists, errAlreadyRunning(req.Ref))
	}
	bs.m[req.Ref] = b
	close(bs.started)
	bs.started = make(chan struct{})
	return b, nil
}

type errAlreadyRunning string

func (e errAlreadyRunning) Error() string { return "build " + string(e) + " is running already" }

// wait returns the build ref, waiting for it to start.
func (bs *builds) wait(ctx context.Context, ref string) (*build, error) {
	for {
		bs.mu.Lock()
		b, ok := bs.m[ref]
		started := bs.started
		bs.mu.Unlock()
		if ok {
			return b, nil
		}
		select {
		case <-started:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// active lists the builds that are running.
func (bs *builds) active() []*build {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	var out []*build
	for _, b := range bs.m {
		if !b.isDone() {
			out = append(out, b)
		}
	}
	return out
}

// Write implements progress.Writer.
func (b *build) Write(e progress.Event) {
	b.mu.Lock()
	b.events = append(b.events, e)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *build) finish(err error) {
	b.mu.Lock()
	b.err, b.finished = err, time.Now()
	b.mu.Unlock()
	close(b.done)
}

func (b *build) isDone() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

func (b *build) finishedAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.finished
}

// since returns the events from index i on and a channel closed when
// there are more.
func (b *build) since(i int) ([]progress.Event, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.events[i:len(b.events):len(b.events)], b.changed
}

// statusInterval is how long events are gathered into one message at most.
const statusInterval = 50 * time.Millisecond

// Status streams a build's progress from its start until it ends.
func (c *control) Status(req *controlapi.StatusRequest, stream grpc.ServerStreamingServer[controlapi.StatusResponse]) error {
	ctx := stream.Context()
	b, err := c.s.builds.wait(ctx, req.Ref)
	if err != nil {
		return err
	}
	var t translator
	next := 0
	for {
		// Read done before the events: once it is set, since sees them all.
		done := b.isDone()
		events, changed := b.since(next)
		next += len(events)
		for _, m := range t.translate(events) {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-b.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		// Gather what follows for a moment, unless the build is over.
		select {
		case <-time.After(statusInterval):
		case <-b.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
