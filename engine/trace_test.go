package engine

import (
	"context"
	"testing"

	cachelocal "github.com/kiln-build/kiln/cache/remote/local"
	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/engine/history"
	"github.com/kiln-build/kiln/session"
	"github.com/kiln-build/kiln/source/local"
)

// idSession is a session that names its client, as the daemon's does.
type idSession struct {
	session.Session
	id string
}

func (s idSession) ClientID() string { return s.id }

func (s idSession) Secret(context.Context, string) ([]byte, error) { return []byte("s3cr3t"), nil }

// TestRecordSecretsKeepsClientID: the history's session wrapper still
// names the client, so the build reuses the client's kept context instead
// of syncing a private copy (a regression once hid it).
func TestRecordSecretsKeepsClientID(t *testing.T) {
	tests := []struct {
		name string
		sess session.Session
		want string
	}{
		{"named client", idSession{id: "client-1"}, "client-1"},
		{"anonymous", struct{ session.Session }{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trace := history.NewRecorder()
			ci, ok := recordSecrets(tt.sess, trace).(local.ClientIdentifier)
			if !ok {
				t.Fatal("the wrapped session hides ClientID")
			}
			if got := ci.ClientID(); got != tt.want {
				t.Errorf("ClientID() = %q, want %q", got, tt.want)
			}
		})
	}
	if recordSecrets(nil, history.NewRecorder()) != nil {
		t.Error("a nil session came back wrapped")
	}
}

// storeSession is a BuildKit client's session: it exposes its cache
// directory as a content store.
type storeSession struct {
	session.Session
}

func (storeSession) ContentStore(context.Context, string) (content.Store, error) { return nil, nil }

// TestRecordSecretsKeepsContentStores: the wrapper exposes a client's
// content stores exactly when the session does, so buildctl's
// --export-cache type=local reaches its directory and kiln's sessions
// still get the daemon-side writer.
func TestRecordSecretsKeepsContentStores(t *testing.T) {
	tests := []struct {
		name string
		sess session.Session
		want bool
	}{
		{"BuildKit client", storeSession{}, true},
		{"kiln client", idSession{id: "c"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := recordSecrets(tt.sess, history.NewRecorder())
			if _, ok := w.(cachelocal.ContentStores); ok != tt.want {
				t.Errorf("wrapped session is ContentStores = %v, want %v", ok, tt.want)
			}
			if _, ok := w.(local.ClientIdentifier); !ok {
				t.Error("the wrapped session hides ClientID")
			}
		})
	}
}
