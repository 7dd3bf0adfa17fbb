package buildkit

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	bksession "github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/core/errdefs"
)

// startSession runs a BuildKit client session (BuildKit's own session
// package) with the attachables against m, as Control.Session does over a
// real stream, and returns its id.
func startSession(t testing.TB, ctx context.Context, m *sessions, a ...bksession.Attachable) string {
	t.Helper()
	sess, err := bksession.NewSession(ctx, "shared key é")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range a {
		sess.Allow(x)
	}
	go func() {
		_ = sess.Run(ctx, func(ctx context.Context, _ string, meta map[string][]string) (net.Conn, error) {
			client, daemon := net.Pipe()
			go func() { _ = m.serve(ctx, daemon, meta) }()
			return client, nil
		})
	}()
	return sess.ID()
}

func TestSessionsGet(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := newSessions()

	// A Solve may ask before the session arrives: get waits for it.
	id := "not-yet"
	got := make(chan error, 1)
	go func() {
		gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
		defer gcancel()
		_, err := m.get(gctx, "vertex-prefix:"+id)
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	client, daemon := net.Pipe()
	defer client.Close()
	go func() {
		_ = m.serve(ctx, daemon, map[string][]string{strings.ToLower(headerSessionID): {id}})
	}()
	if err := <-got; err != nil {
		t.Fatalf("get of a session that arrives later: %v", err)
	}

	// A session that never comes: the caller's deadline, named.
	gctx, gcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer gcancel()
	if _, err := m.get(gctx, "never"); err == nil || !strings.Contains(err.Error(), "no active session for never") {
		t.Errorf("get of a missing session: err = %v", err)
	}

	// The same id twice is refused.
	c2, d2 := net.Pipe()
	defer c2.Close()
	if err := m.serve(ctx, d2, map[string][]string{headerSessionID: {id}}); err == nil || !strings.Contains(err.Error(), "open already") {
		t.Errorf("second session with one id: err = %v", err)
	}
	// No id at all.
	c3, d3 := net.Pipe()
	defer c3.Close()
	if err := m.serve(ctx, d3, map[string][]string{}); err == nil {
		t.Error("a session without an id was served")
	}
}

// A real client session: its methods, shared key (escaped on the wire)
// and services answer through the tunnelled connection, and a context
// from Context ends with the session.
func TestSessionsCaller(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := newSessions()
	sctx, scancel := context.WithCancel(ctx)
	id := startSession(t, sctx, m, oneSecret{id: "tok", value: "s3cret"})
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	c, err := m.get(gctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.SharedKey() != "shared key é" {
		t.Errorf("SharedKey = %q", c.SharedKey())
	}
	a := newSessionAdapter("ref", c, "")
	if !a.supports("moby.buildkit.secrets.v1.Secrets", "GetSecret") {
		t.Error("the secrets service the client offers is not supported")
	}
	if a.supports("moby.sshforward.v1.SSH", "ForwardAgent") {
		t.Error("a service the client does not offer is supported")
	}
	b, err := a.Secret(ctx, "tok")
	if err != nil || string(b) != "s3cret" {
		t.Fatalf("Secret = %q, %v", b, err)
	}
	if _, err := a.Secret(ctx, "missing"); !errdefs.IsNotFound(err) {
		t.Errorf("Secret of one the client does not have: err = %v, want not found", err)
	}
	callCtx := c.Context(context.Background())
	scancel() // the client ends its session
	select {
	case <-callCtx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a call context outlived the session")
	}
}

// A client that stops answering health checks (here: one without the
// health service, with the shortest interval a client may ask for) loses
// its session, and waiting callers see it gone.
func TestSessionsHealthCheck(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := newSessions()
	client, daemon := net.Pipe()
	defer client.Close()
	srv := grpc.NewServer() // no health service
	go (&http2.Server{}).ServeConn(client, &http2.ServeConnOpts{Handler: srv})
	done := make(chan error, 1)
	go func() {
		done <- m.serve(ctx, daemon, map[string][]string{headerSessionID: {"mute"}, headerHealthTimeout: {"1"}})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a client failing its health checks kept its session")
	}
	gctx, gcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer gcancel()
	if _, err := m.get(gctx, "mute"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("get after the session ended: err = %v", err)
	}
}

// oneSecret is a client's secrets service holding one secret.
type oneSecret struct {
	secrets.UnimplementedSecretsServer
	id, value string
}

func (s oneSecret) Register(g *grpc.Server) { secrets.RegisterSecretsServer(g, s) }

func (s oneSecret) GetSecret(_ context.Context, req *secrets.GetSecretRequest) (*secrets.GetSecretResponse, error) {
	if req.ID != s.id {
		return nil, status.Errorf(codes.NotFound, "secret %s not found", req.ID)
	}
	return &secrets.GetSecretResponse{Data: []byte(s.value)}, nil
}

// A client that comes back with the id of a session that has ended gets
// it, and the old session's end does not remove the new one.
func TestSessionsTakeOver(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := newSessions()
	md := map[string][]string{headerSessionID: {"again"}}
	serve := func(ctx context.Context) chan error {
		client, daemon := net.Pipe()
		t.Cleanup(func() { client.Close() })
		done := make(chan error, 1)
		go func() { done <- m.serve(ctx, daemon, md) }()
		return done
	}
	get := func() bksession.Caller {
		gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
		defer gcancel()
		c, err := m.get(gctx, "again")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx1, cancel1 := context.WithCancel(ctx)
	done1 := serve(ctx1)
	first := get()
	cancel1()
	done2 := serve(ctx)
	if err := <-done1; err != nil {
		t.Fatalf("first session: %v", err)
	}
	second := get()
	if second == first {
		t.Fatal("get returned the ended session")
	}
	select {
	case err := <-done2:
		t.Fatalf("the second session with the id ended: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if get() != second {
		t.Error("the first session's end removed the second")
	}
}
