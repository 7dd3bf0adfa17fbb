package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/filesync"
	"github.com/kiln-build/kiln/session"
)

// errClientGone is the cause of a build whose client closed its stream.
var errClientGone = errdefs.WithClass(errdefs.ErrCanceled, errors.New("the client closed the build stream"))

// StreamSession implements session.Session over one Build stream: the
// daemon sends requests (sync, secret, ssh, credentials) and a receive
// loop routes the client's answers back to whoever waits for them.
type StreamSession struct {
	req    *api.BuildRequest
	stream BuildStream

	sendMu sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	syncs   map[uint32]*syncRoute
	waiting map[uint64]chan *api.BuildClientMessage
	conns   map[uint64]*sshConn
	done    chan struct{} // closed when the stream ends
	err     error         // why it ended
}

var _ session.Session = (*StreamSession)(nil)

type syncRoute struct {
	stats chan *api.SyncStats
	files chan *api.FileData
	done  chan struct{}
}

func newStreamSession(req *api.BuildRequest, stream BuildStream) *StreamSession {
	return &StreamSession{
		req: req, stream: stream,
		syncs: map[uint32]*syncRoute{}, waiting: map[uint64]chan *api.BuildClientMessage{},
		conns: map[uint64]*sshConn{}, done: make(chan struct{}),
	}
}

// send serialises writes to the stream.
func (s *StreamSession) send(m *api.BuildServerMessage) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	select {
	case <-s.done:
		return s.err
	default:
	}
	if err := s.stream.Send(m); err != nil {
		return errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("send to client: %w", err))
	}
	return nil
}

// receive routes client messages until the stream ends, then cancels the
// build (the client is gone).
func (s *StreamSession) receive(ctx context.Context, cancel context.CancelCauseFunc) {
	for {
		m, err := s.stream.Recv()
		if err != nil {
			s.mu.Lock()
			s.err = errClientGone
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.err = errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("build stream: %w", err))
			}
			close(s.done)
			conns := make([]*sshConn, 0, len(s.conns))
			for _, c := range s.conns {
				conns = append(conns, c)
			}
			s.mu.Unlock()
			for _, c := range conns {
				c.closeRemote()
			}
			cancel(s.err)
			return
		}
		s.route(ctx, m)
	}
}

func (s *StreamSession) route(ctx context.Context, m *api.BuildClientMessage) {
	switch x := m.GetMsg().(type) {
	case *api.BuildClientMessage_Stats:
		if r := s.syncRoute(x.Stats.GetId()); r != nil {
			select {
			case r.stats <- x.Stats:
			case <-r.done:
			case <-ctx.Done():
			}
		}
	case *api.BuildClientMessage_File:
		if r := s.syncRoute(x.File.GetId()); r != nil {
			select {
			case r.files <- x.File:
			case <-r.done:
			case <-ctx.Done():
			}
		}
	case *api.BuildClientMessage_Secret:
		s.answer(x.Secret.GetRequestId(), m)
	case *api.BuildClientMessage_Credentials:
		s.answer(x.Credentials.GetRequestId(), m)
	case *api.BuildClientMessage_Ssh:
		s.mu.Lock()
		c := s.conns[x.Ssh.GetConnId()]
		s.mu.Unlock()
		if c != nil {
			c.deliver(x.Ssh)
		}
	}
}

func (s *StreamSession) syncRoute(id uint32) *syncRoute {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs[id]
}

func (s *StreamSession) answer(id uint64, m *api.BuildClientMessage) {
	s.mu.Lock()
	ch := s.waiting[id]
	delete(s.waiting, id)
	s.mu.Unlock()
	if ch != nil {
		ch <- m
	}
}

// ID implements session.Session.
func (s *StreamSession) ID() string { return s.req.GetRef() }

// ClientID identifies the client for the context store.
func (s *StreamSession) ClientID() string { return s.req.GetClientId() }

// SyncDir implements session.Session.
func (s *StreamSession) SyncDir(ctx context.Context, name string, opts session.SyncOptions, dest string) (session.SyncStats, error) {
	if name == "context" && !s.req.GetHasContext() {
		return session.SyncStats{}, errdefs.Invalidf("this build has no context (the Dockerfile came from stdin): COPY and ADD of local files need a context directory")
	}
	s.mu.Lock()
	s.nextID++
	id := uint32(s.nextID)
	r := &syncRoute{stats: make(chan *api.SyncStats, 8), files: make(chan *api.FileData, 32), done: make(chan struct{})}
	s.syncs[id] = r
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.syncs, id)
		s.mu.Unlock()
		close(r.done)
	}()
	if err := s.send(&api.BuildServerMessage{Msg: &api.BuildServerMessage_Sync{Sync: filesync.NewSyncRequest(id, name, opts)}}); err != nil {
		return session.SyncStats{}, err
	}
	return filesync.Receive(ctx, dest, filesync.ReceiveConn{
		ID: id, Stats: r.stats, Files: r.files,
		Request: func(fr *api.FileRequest) error {
			return s.send(&api.BuildServerMessage{Msg: &api.BuildServerMessage_Files{Files: fr}})
		},
	})
}

// call sends a request built with the new request id and waits for its
// answer.
func (s *StreamSession) call(ctx context.Context, build func(id uint64) *api.BuildServerMessage) (*api.BuildClientMessage, error) {
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	ch := make(chan *api.BuildClientMessage, 1)
	s.waiting[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiting, id)
		s.mu.Unlock()
	}()
	if err := s.send(build(id)); err != nil {
		return nil, err
	}
	select {
	case m := <-ch:
		return m, nil
	case <-s.done:
		return nil, s.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// Secret implements session.Session.
func (s *StreamSession) Secret(ctx context.Context, id string) ([]byte, error) {
	if !slices.Contains(s.req.GetSecretIds(), id) {
		return nil, errdefs.NotFoundf("secret %s: not given to kiln build", id)
	}
	m, err := s.call(ctx, func(rid uint64) *api.BuildServerMessage {
		return &api.BuildServerMessage{Msg: &api.BuildServerMessage_Secret{Secret: &api.SecretRequest{RequestId: rid, Id: id}}}
	})
	if err != nil {
		return nil, err
	}
	r := m.GetSecret()
	if r.GetNotFound() {
		return nil, errdefs.NotFoundf("secret %s: the client could not read it", id)
	}
	return r.GetData(), nil
}

// Credentials implements session.Session.
func (s *StreamSession) Credentials(ctx context.Context, host string) (session.Credential, bool, error) {
	m, err := s.call(ctx, func(rid uint64) *api.BuildServerMessage {
		return &api.BuildServerMessage{Msg: &api.BuildServerMessage_Credentials{Credentials: &api.CredentialsRequest{RequestId: rid, Host: host}}}
	})
	if err != nil {
		return session.Credential{}, false, err
	}
	r := m.GetCredentials()
	c := session.Credential{Username: r.GetUsername(), Secret: r.GetSecret(), IdentityToken: r.GetIdentityToken()}
	return c, c.Username != "" || c.IdentityToken != "", nil
}

// DialSSH implements session.Session: a connection whose bytes travel as
// SSHData messages to the client's agent.
func (s *StreamSession) DialSSH(ctx context.Context, id string) (net.Conn, error) {
	if !slices.Contains(s.req.GetSshIds(), id) {
		return nil, errdefs.NotFoundf("ssh agent %s: not forwarded by kiln build (--ssh %s)", id, id)
	}
	local, remote := net.Pipe()
	s.mu.Lock()
	s.nextID++
	c := &sshConn{s: s, id: s.nextID, agent: id, remote: remote}
	s.conns[c.id] = c
	s.mu.Unlock()
	go c.pump()
	return local, nil
}

// sshConn carries one agent connection over the stream.
type sshConn struct {
	s      *StreamSession
	id     uint64
	agent  string
	remote net.Conn // the daemon side's peer end
	once   sync.Once
}

// pump sends what the local side writes to the client.
func (c *sshConn) pump() {
	buf := make([]byte, 32<<10)
	first := true
	for {
		n, err := c.remote.Read(buf)
		if n > 0 {
			m := &api.SSHData{ConnId: c.id, Data: append([]byte(nil), buf[:n]...)}
			if first {
				m.Id, first = c.agent, false
			}
			if c.s.send(&api.BuildServerMessage{Msg: &api.BuildServerMessage_Ssh{Ssh: m}}) != nil {
				c.closeRemote()
				return
			}
		}
		if err != nil {
			_ = c.s.send(&api.BuildServerMessage{Msg: &api.BuildServerMessage_Ssh{Ssh: &api.SSHData{ConnId: c.id, Id: c.agent, Eof: true}}})
			c.closeRemote()
			return
		}
	}
}

// deliver writes the client's bytes to the local side.
func (c *sshConn) deliver(m *api.SSHData) {
	if len(m.GetData()) > 0 {
		if _, err := c.remote.Write(m.GetData()); err != nil {
			c.closeRemote()
			return
		}
	}
	if m.GetEof() || m.GetError() != "" {
		c.closeRemote()
	}
}

func (c *sshConn) closeRemote() {
	c.once.Do(func() {
		_ = c.remote.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c.id)
		c.s.mu.Unlock()
	})
}
