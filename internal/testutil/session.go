package testutil

import (
	"context"
	"net"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/filesync"
	"github.com/kiln-build/kiln/session"
)

// Session is an in-process session.Session for tests: local directories by
// sync name, secrets, ssh agent sockets and registry credentials from maps.
type Session struct {
	Ref     string
	Client  string            // client id; "" keeps no context copy across builds
	Dirs    map[string]string // sync name ("context") → directory
	Secrets map[string][]byte
	SSH     map[string]string // agent id → unix socket path
	Creds   map[string]session.Credential
}

var _ session.Session = (*Session)(nil)

// ID implements session.Session.
func (s *Session) ID() string { return s.Ref }

// ClientID identifies the client for the context store.
func (s *Session) ClientID() string { return s.Client }

// SyncDir implements session.Session with filesync.Local.
func (s *Session) SyncDir(ctx context.Context, name string, opts session.SyncOptions, dest string) (session.SyncStats, error) {
	src, ok := s.Dirs[name]
	if !ok {
		return session.SyncStats{}, errdefs.NotFoundf("local directory %q", name)
	}
	return filesync.Local(ctx, src, dest, opts)
}

// Secret implements session.Session.
func (s *Session) Secret(_ context.Context, id string) ([]byte, error) {
	v, ok := s.Secrets[id]
	if !ok {
		return nil, errdefs.NotFoundf("secret %s", id)
	}
	return v, nil
}

// DialSSH implements session.Session.
func (s *Session) DialSSH(ctx context.Context, id string) (net.Conn, error) {
	p, ok := s.SSH[id]
	if !ok {
		return nil, errdefs.NotFoundf("ssh agent %s", id)
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", p)
}

// Credentials implements session.Session.
func (s *Session) Credentials(_ context.Context, host string) (session.Credential, bool, error) {
	c, ok := s.Creds[host]
	return c, ok, nil
}
