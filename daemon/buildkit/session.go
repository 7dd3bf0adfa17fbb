package buildkit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	controlapi "github.com/moby/buildkit/api/services/control"
	bksession "github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth"
	sessioncontent "github.com/moby/buildkit/session/content"
	"github.com/moby/buildkit/session/grpchijack"
	"github.com/moby/buildkit/session/secrets"
	"github.com/moby/buildkit/session/sshforward"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/session"
)

// serveSession runs one client session: the stream becomes a connection
// on which the session manager opens a gRPC client to the services the
// client exposes (its metadata lists them). It returns when the client
// closes the session or the request ends.
func (s *Service) serveSession(stream grpc.BidiStreamingServer[controlapi.BytesMessage, controlapi.BytesMessage]) error {
	conn, closed, md := grpchijack.Hijack(stream)
	defer conn.Close()
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	go func() {
		select {
		case <-closed:
			cancel(errors.New("the client closed its session"))
		case <-ctx.Done():
		}
	}()
	if ids := metadata.MD(md).Get(headerSessionID); len(ids) == 1 {
		s.peers.Store(ids[0], peerID(stream.Context()))
		defer s.peers.Delete(ids[0])
	}
	return s.sessions.serve(ctx, conn, md)
}

// peer returns who opened session id.
func (s *Service) peer(id string) string {
	if v, ok := s.peers.Load(id); ok {
		return v.(string)
	}
	return ""
}

// peerID names who is at the other end of the connection: the TLS client
// certificate's fingerprint, a TCP client's address, or "unix" (whoever
// may open the socket).
func peerID(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		sum := sha256.Sum256(ti.State.PeerCertificates[0].Raw)
		return "cert:" + hex.EncodeToString(sum[:])
	}
	if a, ok := p.Addr.(*net.TCPAddr); ok {
		return "ip:" + a.IP.String()
	}
	return p.Addr.Network()
}

// sessionWait bounds how long a Solve waits for its session to connect.
const sessionWait = 30 * time.Second

// caller returns the client session id of a Solve.
func (s *Service) caller(ctx context.Context, id string) (bksession.Caller, error) {
	if id == "" {
		return nil, errdefs.Invalidf("the solve request names no session: BuildKit clients open one with the Session call first")
	}
	ctx, cancel := context.WithTimeoutCause(ctx, sessionWait, fmt.Errorf("the client's session %s did not connect within %s", id, sessionWait))
	defer cancel()
	c, err := s.sessions.get(ctx, id)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return nil, errdefs.WithClass(errdefs.ErrDeadlineExceeded, cause)
		}
		return nil, errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("session %s: %w", id, err))
	}
	return c, nil
}

// sessionAdapter implements Kiln's session.Session over a BuildKit
// client session: the client's attachables answer the daemon's calls.
type sessionAdapter struct {
	ref      string
	caller   bksession.Caller
	clientID string
	// names maps the engine's directory names to the client's ("context"
	// to the contextkey option).
	names map[string]string
}

var (
	_ session.Session = (*sessionAdapter)(nil)
)

func newSessionAdapter(ref string, c bksession.Caller, peer string) *sessionAdapter {
	return &sessionAdapter{ref: ref, caller: c, clientID: clientID(c.SharedKey(), peer)}
}

// clientID keys the client's synced directories in the context store.
// BuildKit keys them by the session's shared key, which the client
// chooses (buildx: per builder and context directory; buildctl: none).
// Kiln adds who connected, so that a client never receives another
// client's files by claiming their key.
func clientID(sharedKey, peer string) string {
	sum := sha256.Sum256([]byte("buildkit\x00" + sharedKey + "\x00" + peer))
	return hex.EncodeToString(sum[:16])
}

// ID implements session.Session.
func (a *sessionAdapter) ID() string { return a.ref }

// ClientID implements source/local.ClientIdentifier.
func (a *sessionAdapter) ClientID() string { return a.clientID }

func (a *sessionAdapter) supports(service, method string) bool {
	return a.caller.Supports(bksession.MethodURL(service, method))
}

// Secret implements session.Session.
func (a *sessionAdapter) Secret(ctx context.Context, id string) ([]byte, error) {
	b, err := secrets.GetSecret(ctx, a.caller, id)
	if errors.Is(err, secrets.ErrNotFound) {
		return nil, errdefs.NotFoundf("secret %s: not given to the build (buildctl --secret id=%s,src=FILE; buildx build --secret id=%s,src=FILE)", id, id, id)
	}
	if err != nil {
		return nil, clientError(fmt.Sprintf("secret %s", id), err)
	}
	return b, nil
}

// DialSSH implements session.Session: a connection relayed to the
// client's agent over the session's ForwardAgent stream.
func (a *sessionAdapter) DialSSH(ctx context.Context, id string) (net.Conn, error) {
	notFound := errdefs.NotFoundf("ssh agent %s: not forwarded by the client (buildctl --ssh %s; buildx build --ssh %s)", id, id, id)
	if !a.supports(sshforward.SSH_ServiceDesc.ServiceName, "ForwardAgent") {
		return nil, notFound
	}
	if err := sshforward.CheckSSHID(ctx, a.caller, id); err != nil {
		if status.Code(errors.Unwrap(err)) == codes.NotFound || status.Code(err) == codes.NotFound {
			return nil, notFound
		}
		return nil, clientError("ssh agent "+id, err)
	}
	// The relay outlives the dial: it ends when either side closes.
	sctx := a.caller.Context(context.Background())
	sctx = metadata.NewOutgoingContext(sctx, metadata.Pairs(sshforward.KeySSHID, id))
	stream, err := sshforward.NewSSHClient(a.caller.Conn()).ForwardAgent(sctx)
	if err != nil {
		return nil, clientError("ssh agent "+id, err)
	}
	local, remote := net.Pipe()
	go func() { _ = sshforward.Copy(sctx, remote, stream, stream.CloseSend) }()
	return local, nil
}

// Credentials implements session.Session through the client's auth
// service (its docker config). An empty username with a secret is an
// identity token, as BuildKit's auth provider sends one.
func (a *sessionAdapter) Credentials(ctx context.Context, host string) (session.Credential, bool, error) {
	if !a.supports(auth.Auth_ServiceDesc.ServiceName, "Credentials") {
		return session.Credential{}, false, nil
	}
	resp, err := auth.NewAuthClient(a.caller.Conn()).Credentials(a.caller.Context(ctx), &auth.CredentialsRequest{Host: host})
	if err != nil {
		if status.Code(err) == codes.NotFound || status.Code(err) == codes.Unimplemented {
			return session.Credential{}, false, nil
		}
		return session.Credential{}, false, clientError("credentials for "+host, err)
	}
	c := session.Credential{Username: resp.Username, Secret: resp.Secret}
	if c.Username == "" && c.Secret != "" {
		c = session.Credential{IdentityToken: resp.Secret}
	}
	return c, c.Username != "" || c.IdentityToken != "", nil
}

// ContentStore returns a content store the client exposes under id
// ("local:DIR" for a --export-cache/--import-cache type=local directory).
func (a *sessionAdapter) ContentStore(_ context.Context, id string) (content.Store, error) {
	if !a.supports("containerd.services.content.v1.Content", "Info") {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("the client exposes no content store %s", id))
	}
	return sessioncontent.NewCallerStore(a.caller, id), nil
}

// clientError classifies an error of a call to the client.
func clientError(what string, err error) error {
	switch status.Code(err) {
	case codes.Canceled:
		return errdefs.WithClass(errdefs.ErrCanceled, fmt.Errorf("%s: %w", what, err))
	case codes.NotFound:
		return errdefs.WithClass(errdefs.ErrNotFound, fmt.Errorf("%s: %s", what, status.Convert(err).Message()))
	case codes.Unavailable:
		return errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("%s: the client went away: %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}
