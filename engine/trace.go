package engine

import (
	"context"

	cachelocal "github.com/kiln-build/kiln/cache/remote/local"
	"github.com/kiln-build/kiln/engine/history"
	"github.com/kiln-build/kiln/session"
	"github.com/kiln-build/kiln/source/local"
)

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
	r := secretRecorder{Session: sess, trace: trace}
	if cs, ok := sess.(cachelocal.ContentStores); ok {
		// A BuildKit client's cache directory (--export-cache
		// type=local) is reached through its session: the wrapper must
		// not hide it, or the local cache backend finds no client store.
		return contentStoreRecorder{secretRecorder: r, ContentStores: cs}
	}
	return r
}

// contentStoreRecorder is a secretRecorder over a session that also
// exposes the client's content stores.
type contentStoreRecorder struct {
	secretRecorder
	cachelocal.ContentStores
}

// ClientID forwards the session's client identity, which keys the kept
// build contexts (source/local.ClientIdentifier): without it, wrapping
// the session would make every build sync a private context copy.
func (s secretRecorder) ClientID() string {
	if ci, ok := s.Session.(local.ClientIdentifier); ok {
		return ci.ClientID()
	}
	return ""
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
