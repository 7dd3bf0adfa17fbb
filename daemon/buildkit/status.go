package buildkit

import (
	"context"
	"errors"
	"sync"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/progress"
)

// keepFinished is how long the edge remembers a finished Solve, for a
// Status call that comes late (a client calls Status and Solve at the
// same time).
const keepFinished = time.Minute

// solves tracks the Solve calls by ref, to end a Status stream whose
// build never reaches the engine (the request was refused before it
// started): the engine's Status would wait for it.
type solves struct {
	mu sync.Mutex
	m  map[string]*solve
}

// solve is one Solve call's state.
type solve struct {
	req      *controlapi.SolveRequest
	created  time.Time
	done     chan struct{} // closed when the Solve returns
	started  bool          // the engine received the build
	finished time.Time
	// warnings are the client's build function's (gateway Warn calls):
	// Status sends them with the build's first progress.
	warnings []*controlapi.VertexWarning
}

func newSolves() *solves { return &solves{m: map[string]*solve{}} }

// get returns ref's state, making it when a Status call comes first.
func (ss *solves) get(ref string) *solve {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for r, s := range ss.m {
		// Finished a while ago, or asked for by a Status call whose
		// Solve never came.
		if (!s.finished.IsZero() && time.Since(s.finished) > keepFinished) || (s.req == nil && time.Since(s.created) > keepFinished) {
			delete(ss.m, r)
		}
	}
	s, ok := ss.m[ref]
	if !ok {
		s = &solve{created: time.Now(), done: make(chan struct{})}
		ss.m[ref] = s
	}
	return s
}

// begin registers a Solve. A ref that is being solved is refused.
func (ss *solves) begin(req *controlapi.SolveRequest) (*solve, error) {
	if req.Ref == "" {
		return nil, errdefs.Invalidf("the solve request has no ref")
	}
	s := ss.get(req.Ref)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s.req != nil {
		return nil, errdefs.WithClass(errdefs.ErrAlreadyExists, errors.New("build "+req.Ref+" is solved already"))
	}
	s.req, s.created = req, time.Now()
	return s, nil
}

// markStarted records that the engine received the build: its Status
// ends with the build.
func (ss *solves) markStarted(s *solve) {
	ss.mu.Lock()
	s.started = true
	ss.mu.Unlock()
}

// setWarnings records the warnings of the client's build function.
func (ss *solves) setWarnings(s *solve, w []*controlapi.VertexWarning) {
	ss.mu.Lock()
	s.warnings = w
	ss.mu.Unlock()
}

// takeWarnings returns the warnings not sent yet.
func (ss *solves) takeWarnings(s *solve) []*controlapi.VertexWarning {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	w := s.warnings
	s.warnings = nil
	return w
}

func (ss *solves) end(s *solve) {
	ss.mu.Lock()
	s.finished = time.Now()
	ss.mu.Unlock()
	close(s.done)
}

func (ss *solves) isStarted(s *solve) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return s.started
}

// statusInterval is how long events are gathered into one message at most.
const statusInterval = 50 * time.Millisecond

// errNotStarted ends the Status of a Solve refused before its build began.
var errNotStarted = errors.New("the build did not start")

// Status streams a build's progress (the engine's, from its start) until
// the build ends.
func (c *control) Status(req *controlapi.StatusRequest, stream grpc.ServerStreamingServer[controlapi.StatusResponse]) error {
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	s := c.s.solves.get(req.Ref)
	go func() {
		select {
		case <-s.done:
			if !c.s.solves.isStarted(s) {
				cancel(errNotStarted)
			}
		case <-ctx.Done():
		}
	}()
	buf := progress.NewBuffer()
	statusErr := make(chan error, 1)
	go func() {
		statusErr <- c.s.o.Engine.Status(ctx, req.Ref, buf)
		buf.Close()
	}()
	var t translator
	for {
		events, ok := buf.Next(context.Background())
		msgs := t.translate(events)
		if len(events) > 0 {
			// The build started: its build function warned before.
			if w := c.s.solves.takeWarnings(s); len(w) > 0 {
				msgs = append(msgs, &controlapi.StatusResponse{Warnings: w})
			}
		}
		for _, m := range msgs {
			if err := stream.Send(m); err != nil {
				cancel(err)
				return err
			}
		}
		if !ok {
			break
		}
		// Gather what follows for a moment, unless the build is over.
		select {
		case <-time.After(statusInterval):
		case <-buf.Done():
		}
	}
	err := <-statusErr
	if errors.Is(context.Cause(ctx), errNotStarted) {
		return nil // the Solve says why
	}
	return err
}
