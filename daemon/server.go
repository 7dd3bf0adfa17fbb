package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
)

// Server is the kilnd API server. Create it with New, open its listeners
// with Listen (or let Serve do it) and run it with Serve.
type Server struct {
	cfg     *config.Config
	log     *slog.Logger
	svc     Services
	version string
	rev     string
	worker  *api.WorkerInfo
	grace   time.Duration
	// apis register more gRPC services next to Kiln's own on every
	// server (BuildKit's API, daemon/buildkit).
	apis []func(grpc.ServiceRegistrar)

	mu        sync.Mutex
	listeners []*listener
	// base is the parent of every request's context; canceling it cancels
	// the requests in flight.
	base   context.Context
	cancel context.CancelCauseFunc
}

// Option configures a Server.
type Option func(*Server)

// WithServices plugs in the engine's services (EngineServices). The RPCs
// of a service not given answer Unimplemented.
func WithServices(svc Services) Option { return func(s *Server) { s.svc = svc } }

// WithAPIs registers more gRPC services on every listener, next to Kiln's
// own API (cmd/kilnd adds BuildKit's Control API this way). They share
// the interceptors: requests end when kilnd shuts down, panics become
// Internal errors, and error classes become status codes.
func WithAPIs(register ...func(grpc.ServiceRegistrar)) Option {
	return func(s *Server) { s.apis = append(s.apis, register...) }
}

// WithLogger sets the logger (default: text on stderr at the configured
// level).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithVersion sets the version and VCS revision Info reports.
func WithVersion(version, revision string) Option {
	return func(s *Server) { s.version, s.rev = version, revision }
}

// WithWorkerInfo sets the worker description Info reports instead of
// detecting it with DetectWorker.
func WithWorkerInfo(w *api.WorkerInfo) Option { return func(s *Server) { s.worker = w } }

// WithShutdownGrace sets how long Serve waits for canceled requests to
// return before closing their connections (default 10s).
func WithShutdownGrace(d time.Duration) Option { return func(s *Server) { s.grace = d } }

// New returns a server for cfg. It detects the worker (see DetectWorker)
// unless WithWorkerInfo is given; it opens nothing yet.
func New(ctx context.Context, cfg *config.Config, opts ...Option) (*Server, error) {
	s := &Server{cfg: cfg, grace: 10 * time.Second}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = NewLogger(os.Stderr, cfg.Log)
	}
	if s.version == "" {
		s.version = "dev"
	}
	if s.rev == "" {
		s.rev = vcsRevision()
	}
	if s.worker == nil {
		w, err := DetectWorker(ctx, cfg)
		if err != nil {
			return nil, err
		}
		s.worker = w
	}
	if s.worker.RuntimePath == "" {
		s.log.Warn("OCI runtime not found; builds that run steps will fail", "binary", cfg.Worker.OCI.RuntimeBinary())
	}
	s.base, s.cancel = context.WithCancelCause(context.Background())
	return s, nil
}

func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	rev, dirty := "", false
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			dirty = kv.Value == "true"
		}
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}

// Listen opens every configured listener. On error, the ones already open
// are closed.
// streamWindow is the gRPC flow-control window of streams and connections.
const streamWindow = 8 << 20

func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listeners != nil {
		return nil
	}
	tlsConf, err := serverTLS(s.cfg.GRPC.TLS)
	if err != nil {
		return err
	}
	var ls []*listener
	for _, a := range s.cfg.GRPC.Address {
		l, err := openListener(a, s.cfg.GRPC, tlsConf, s.log)
		if err != nil {
			closeAll(ls)
			return err
		}
		ls = append(ls, l)
	}
	s.listeners = ls
	return nil
}

// Addrs returns the addresses being listened on, with TCP ports resolved
// (tcp://127.0.0.1:0 becomes tcp://127.0.0.1:41234).
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.shown
	}
	return out
}

func closeAll(ls []*listener) {
	for _, l := range ls {
		l.l.Close()
		if l.socket != "" {
			os.Remove(l.socket)
		}
	}
}

// Serve serves the API on every listener until ctx is done, then shuts
// down gracefully: it stops accepting, cancels the requests in flight,
// waits for them (up to the shutdown grace), closes the listeners and
// removes the unix sockets. It returns nil after a shutdown asked for by
// ctx, or the error that stopped a listener.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	tlsConf, err := serverTLS(s.cfg.GRPC.TLS)
	if err != nil {
		return err
	}
	svc := &service{s: s}
	newServer := func(creds credentials.TransportCredentials) *grpc.Server {
		opts := []grpc.ServerOption{
			grpc.ChainUnaryInterceptor(s.unaryInterceptor),
			grpc.ChainStreamInterceptor(s.streamInterceptor),
			// Build streams carry whole contexts and image tarballs:
			// large flow-control windows keep a fast link (a unix socket)
			// busy instead of waiting for window updates every 64 KiB.
			grpc.InitialWindowSize(streamWindow),
			grpc.InitialConnWindowSize(streamWindow),
			grpc.MaxRecvMsgSize(32 << 20),
			grpc.WriteBufferSize(1 << 20),
			grpc.ReadBufferSize(1 << 20),
		}
		if creds != nil {
			opts = append(opts, grpc.Creds(creds))
		}
		g := grpc.NewServer(opts...)
		api.RegisterControlServer(g, svc)
		for _, r := range s.apis {
			r(g)
		}
		return g
	}
	var plain, secure *grpc.Server
	errc := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		g := plain
		if l.tls {
			if secure == nil {
				secure = newServer(credentials.NewTLS(tlsConf))
			}
			g = secure
		} else {
			if plain == nil {
				plain = newServer(nil)
			}
			g = plain
		}
		s.log.Info("listening", "address", l.shown, "tls", l.tls)
		go func(g *grpc.Server, l *listener) {
			if err := g.Serve(l.l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("serve %s: %w", l.shown, err)
			}
		}(g, l)
	}
	s.log.Info("kilnd is ready", "version", s.version, "root", s.cfg.Root, "pid", os.Getpid())

	var serveErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "reason", context.Cause(ctx))
	case serveErr = <-errc:
		s.log.Error("listener failed; shutting down", "error", serveErr)
	}
	s.shutdown(plain, secure)
	return serveErr
}

// errShutdown cancels the requests in flight when kilnd stops; clients
// see it in the errdefs.ErrUnavailable class.
var errShutdown = errdefs.WithClass(errdefs.ErrUnavailable, errors.New("kilnd is shutting down"))

func (s *Server) shutdown(servers ...*grpc.Server) {
	s.cancel(errShutdown)
	var wg sync.WaitGroup
	for _, g := range servers {
		if g == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { g.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(s.grace):
				s.log.Warn("requests did not finish in time; closing their connections", "grace", s.grace)
				g.Stop()
			}
		}()
	}
	wg.Wait()
	s.mu.Lock()
	closeAll(s.listeners)
	s.mu.Unlock()
	s.log.Info("kilnd stopped")
}

// requestContext returns ctx canceled also when the server shuts down.
func (s *Server) requestContext(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.base, func() { cancel(context.Cause(s.base)) })
	return ctx, func() { stop(); cancel(nil) }
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	ctx, done := s.requestContext(ctx)
	defer done()
	defer s.recoverPanic(info.FullMethod, &err)
	s.log.Debug("request", "method", info.FullMethod)
	resp, err = h(ctx, req)
	if err != nil {
		s.log.Debug("request failed", "method", info.FullMethod, "error", err)
	}
	if m, ok := resp.(proto.Message); ok {
		api.ValidUTF8(m)
	}
	return resp, toGRPC(err)
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	ctx, done := s.requestContext(ss.Context())
	defer done()
	defer s.recoverPanic(info.FullMethod, &err)
	s.log.Debug("stream", "method", info.FullMethod)
	err = h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	if err != nil {
		s.log.Debug("stream failed", "method", info.FullMethod, "error", err)
	}
	return toGRPC(err)
}

// recoverPanic turns a panic in a handler into an Internal error for the
// client (no stack on the wire) and logs the stack.
func (s *Server) recoverPanic(method string, err *error) {
	if r := recover(); r != nil {
		s.log.Error("panic in request handler", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "internal error in kilnd while handling %s (see the daemon log)", method)
	}
}

// ctxStream is a ServerStream with the request's own context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c *ctxStream) Context() context.Context { return c.ctx }

// SendMsg sends m with its text made valid UTF-8: step names, errors and
// warnings quote Dockerfile text, which need not be UTF-8 (proto3 strings
// must be; the fields that must keep their bytes are bytes).
func (c *ctxStream) SendMsg(m any) error {
	if pm, ok := m.(proto.Message); ok {
		api.ValidUTF8(pm)
	}
	return c.ServerStream.SendMsg(m)
}

// info builds the Info answer.
func (s *Server) info() *api.InfoResponse {
	return &api.InfoResponse{
		Version:       s.version,
		Revision:      s.rev,
		GoVersion:     runtime.Version(),
		Root:          s.cfg.Root,
		Listeners:     s.Addrs(),
		Worker:        s.worker,
		CacheBackends: cacheBackends(s.cfg.Cache),
		Rootless:      s.cfg.Rootless.Enabled || os.Geteuid() != 0,
		Pid:           int32(os.Getpid()),
		ConfigFile:    s.cfg.File,
	}
}
