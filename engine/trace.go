package engine

import (
	"context"

	"github.com/kiln-build/kiln/engine/history"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
)

// teeWriter writes each event to the build's writer and to its history
// trace.
type teeWriter struct {
	pw    progress.Writer
	trace *history.Recorder
}

func (t teeWriter) Write(e progress.Event) {
	t.pw.Write(e)
	t.trace.Write(e)
}

// secretRecorder tells the trace every secret the build fetches, so
// that the history never keeps one (a step may print it).
type secretRecorder struct {
	session.Session
	trace *history.Recorder
}

func recordSecrets(sess session.Session, trace *history.Recorder) session.Session {
	if sess == nil {
		return nil
	}
	return secretRecorder{Session: sess, trace: trace}
}

func (s secretRecorder) Secret(ctx context.Context, id string) ([]byte, error) {
	v, err := s.Session.Secret(ctx, id)
	if err == nil {
		s.trace.Secret(v)
	}
	return v, err
}

// countSteps counts the steps of a trace and the cached ones (for a build
// that failed, whose solver stats never came).
func countSteps(trace []history.Step) (steps, cached int) {
	for _, s := range trace {
		steps++
		if s.Cached {
			cached++
		}
	}
	return steps, cached
}
