package engine

import (
	"context"
	"testing"

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
