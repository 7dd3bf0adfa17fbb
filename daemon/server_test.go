package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/client"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/daemon"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/engine/disk"
	"github.com/kiln-build/kiln/gc"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
)

// logBuffer collects the daemon's log.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// socketPath returns a short socket path (unix paths are limited to 108
// bytes) removed when the test ends.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kilnd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "run", "kilnd.sock")
}

func testConfig(t *testing.T, addrs ...string) *config.Config {
	t.Helper()
	cfg := config.DefaultFor(config.Env{UID: 0})
	cfg.Root = filepath.Join(t.TempDir(), "root")
	cfg.GRPC.Address = addrs
	cfg.Worker.OCI.Snapshotter = "native" // no overlay probe in unit tests
	return cfg
}

type running struct {
	srv  *daemon.Server
	log  *logBuffer
	stop context.CancelFunc
	done chan error
}

// start runs a server until the test ends.
func start(t *testing.T, cfg *config.Config, opts ...daemon.Option) *running {
	t.Helper()
	log := &logBuffer{}
	opts = append([]daemon.Option{
		daemon.WithLogger(slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		daemon.WithVersion("v9.9.9", "abc123"),
		daemon.WithShutdownGrace(5 * time.Second),
	}, opts...)
	srv, err := daemon.New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatalf("daemon.New: %v", err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, log: log, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx) }()
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

func (r *running) shutdown(t *testing.T) {
	t.Helper()
	r.stop()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Serve: %v", err)
		}
		close(r.done)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
}

func dial(t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(addr, opts...)
	if err != nil {
		t.Fatalf("client.New(%s): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func info(t *testing.T, c *client.Client) *api.InfoResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("Info over %s: %v", c.Addr(), err)
	}
	return resp
}

func TestInfoOverUnixSocket(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	cfg := testConfig(t, "unix://"+sock)
	cfg.Worker.OCI.Platforms = []string{"linux/arm64", "linux/arm64"}
	cfg.Cache.Blob = []config.CacheTable{{"type": "filesystem", "path": "/var/cache/kiln"}}
	cfg.Cache.Registry = []config.CacheTable{{"type": "redis", "redis-addr": "redis://u:secret@cache:6379/1"}}
	start(t, cfg)

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want a socket with 0660", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(sock))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o711 {
		t.Errorf("socket directory mode = %v, want 0711", di.Mode().Perm())
	}

	got := info(t, dial(t, "unix://"+sock))
	if got.Worker == nil {
		t.Fatal("Info has no worker")
	}
	native := runtime.GOOS + "/" + runtime.GOARCH
	wantPlatforms := []string{native}
	if native != "linux/arm64" {
		wantPlatforms = append(wantPlatforms, "linux/arm64")
	}
	want := &api.InfoResponse{
		Version:       "v9.9.9",
		Revision:      "abc123",
		GoVersion:     runtime.Version(),
		Root:          cfg.Root,
		Listeners:     []string{"unix://" + sock},
		CacheBackends: []string{"filesystem:/var/cache/kiln", "redis:cache:6379"},
		Rootless:      os.Geteuid() != 0,
		Pid:           int32(os.Getpid()),
		Worker: &api.WorkerInfo{
			Runtime:     cfg.Worker.OCI.RuntimeBinary(), // auto: crun when installed
			RuntimePath: got.Worker.RuntimePath,         // depends on the machine; checked below
			Snapshotter: "native",
			Platforms:   wantPlatforms,
			// No max-parallelism: steps start by measured pressure.
			CacheSize:   10_000_000_000,
			NetworkMode: "auto",
			// The host's binfmt_misc emulators; checked below.
			EmulatedPlatforms: got.Worker.EmulatedPlatforms,
		},
	}
	if b, err := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err == nil && strings.HasPrefix(string(b), "enabled") && native == "linux/amd64" &&
		!slices.Contains(got.Worker.EmulatedPlatforms, "linux/arm64") {
		t.Errorf("qemu-aarch64 is registered but Info's emulated platforms are %v", got.Worker.EmulatedPlatforms)
	}
	if diff := cmp.Diff(want, got, cmpProto); diff != "" {
		t.Errorf("Info (-want +got):\n%s", diff)
	}
	if _, err := os.Stat("/usr/sbin/" + got.Worker.Runtime); err == nil && got.Worker.RuntimePath == "" {
		t.Errorf("%s is installed but Info reports no runtime path", got.Worker.Runtime)
	}
}

// cmpProto compares protobuf messages by their exported fields.
var cmpProto = cmp.FilterPath(func(p cmp.Path) bool {
	sf, ok := p.Last().(cmp.StructField)
	return ok && !isExported(sf.Name())
}, cmp.Ignore())

func isExported(name string) bool { return name != "" && name[0] >= 'A' && name[0] <= 'Z' }

func TestInfoOverPlainTCPWarns(t *testing.T) {
	t.Parallel()
	r := start(t, testConfig(t, "tcp://127.0.0.1:0"))
	addrs := r.srv.Addrs()
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "tcp://127.0.0.1:") || addrs[0] == "tcp://127.0.0.1:0" {
		t.Fatalf("Addrs = %v, want one resolved tcp address", addrs)
	}
	got := info(t, dial(t, addrs[0]))
	if diff := cmp.Diff(addrs, got.Listeners); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.log.String(), "UNPROTECTED TCP LISTENER: anyone who can reach "+addrs[0]) {
		t.Errorf("no loud warning for a TCP listener without TLS; log:\n%s", r.log)
	}
}

func TestListensOnEveryAddress(t *testing.T) {
	t.Parallel()
	s1, s2 := socketPath(t), socketPath(t)
	r := start(t, testConfig(t, "unix://"+s1, "tcp://127.0.0.1:0", "unix://"+s2))
	addrs := r.srv.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs = %v", addrs)
	}
	for _, a := range addrs {
		if got := info(t, dial(t, a)); len(got.Listeners) != 3 {
			t.Errorf("Info over %s lists %v", a, got.Listeners)
		}
	}
}

// tlsFiles makes a CA, a server certificate for 127.0.0.1, a client
// certificate from the same CA and one from another CA.
type tlsFiles struct {
	ca, serverCert, serverKey, clientCert, clientKey, otherCert, otherKey string
}

func makeTLS(t *testing.T) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	ca, err := testutil.NewCA("kiln test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testutil.NewCA("someone else's CA")
	if err != nil {
		t.Fatal(err)
	}
	var f tlsFiles
	f.ca = filepath.Join(dir, "ca.pem")
	if err := ca.WriteCertFile(f.ca); err != nil {
		t.Fatal(err)
	}
	if f.serverCert, f.serverKey, err = ca.IssueFiles(dir, "server", "127.0.0.1", "localhost"); err != nil {
		t.Fatal(err)
	}
	if f.clientCert, f.clientKey, err = ca.IssueFiles(dir, "client"); err != nil {
		t.Fatal(err)
	}
	if f.otherCert, f.otherKey, err = other.IssueFiles(dir, "intruder"); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	f := makeTLS(t)
	cfg := testConfig(t, "tcp://127.0.0.1:0")
	cfg.GRPC.TLS = config.TLS{Cert: f.serverCert, Key: f.serverKey, CA: f.ca}
	r := start(t, cfg)
	addr := r.srv.Addrs()[0]
	if strings.Contains(r.log.String(), "UNPROTECTED") {
		t.Errorf("mTLS listener logged the plain-TCP warning:\n%s", r.log)
	}

	got := info(t, dial(t, addr, client.WithTLSFiles(f.ca, f.clientCert, f.clientKey)))
	if got.Version != "v9.9.9" {
		t.Errorf("Info over mTLS: version %q", got.Version)
	}

	refused := []struct {
		name string
		opts []client.Option
	}{
		{"no client certificate", []client.Option{client.WithTLSFiles(f.ca, "", "")}},
		{"certificate from another CA", []client.Option{client.WithTLSFiles(f.ca, f.otherCert, f.otherKey)}},
		{"no TLS at all", nil},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c := dial(t, addr, tt.opts...)
			_, err := c.Info(ctx)
			if err == nil {
				t.Fatal("Info succeeded, want the daemon to refuse the client")
			}
			if !strings.HasPrefix(err.Error(), "cannot reach kilnd at "+addr) {
				t.Errorf("error = %q, want it to start with %q", err, "cannot reach kilnd at "+addr)
			}
			t.Logf("refused: %v", err)
			if strings.Contains(err.Error(), "rpc error") {
				t.Errorf("error shows gRPC jargon: %q", err)
			}
		})
	}
}

func TestTLSWithoutClientCAWarns(t *testing.T) {
	t.Parallel()
	f := makeTLS(t)
	cfg := testConfig(t, "tcp://127.0.0.1:0")
	cfg.GRPC.TLS = config.TLS{Cert: f.serverCert, Key: f.serverKey}
	r := start(t, cfg)
	got := info(t, dial(t, r.srv.Addrs()[0], client.WithTLSFiles(f.ca, "", "")))
	if got.Pid == 0 {
		t.Error("no pid in Info")
	}
	if !strings.Contains(r.log.String(), "TLS listener without client verification") {
		t.Errorf("no warning for TLS without ca; log:\n%s", r.log)
	}
}

func TestUnimplementedWithoutServices(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	start(t, testConfig(t, "unix://"+sock))
	c := dial(t, "unix://"+sock)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Control().DiskUsage(ctx, &api.DiskUsageRequest{})
	err = c.WrapErr(err)
	if !errors.Is(err, errdefs.ErrUnimplemented) {
		t.Fatalf("DiskUsage error = %v, want the unimplemented class", err)
	}
	if want := "DiskUsage is not available in this kilnd: no build engine is configured"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	stream, err := c.Control().Build(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if !errors.Is(c.WrapErr(err), errdefs.ErrUnimplemented) {
		t.Errorf("Build error = %v, want the unimplemented class", err)
	}
}

// fakeEngine answers builds by echoing the request's ref as the result and
// reports disk usage; it blocks a build whose ref is "block" until its
// context ends.
type fakeEngine struct {
	started chan struct{}
	ended   chan error
}

func (f *fakeEngine) services() daemon.Services { return daemon.Services{Builds: f, Disk: f} }

func (f *fakeEngine) Build(ctx context.Context, req engine.Request, _ session.Session, _ progress.Writer) (*engine.Result, error) {
	if req.Ref == "block" {
		close(f.started)
		<-ctx.Done()
		f.ended <- context.Cause(ctx)
		return nil, ctx.Err()
	}
	if req.Ref == "" {
		return nil, errdefs.Invalidf("Dockerfile:3: unknown instruction: FORM")
	}
	return &engine.Result{ExporterResponse: map[string]string{"ref": req.Ref}}, nil
}

func (f *fakeEngine) Usage(ctx context.Context, req disk.UsageRequest) ([]disk.Record, error) {
	if len(req.Filters) > 0 {
		return nil, errdefs.NotFoundf("no records match %q", req.Filters[0])
	}
	return []disk.Record{{Item: gc.Item{ID: "r1", Size: 42}}}, nil
}

func (f *fakeEngine) Prune(ctx context.Context, req disk.PruneRequest, removed func(disk.Record) error) error {
	return removed(disk.Record{Item: gc.Item{ID: "gone"}})
}

func TestServicesAndErrorClasses(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	start(t, testConfig(t, "unix://"+sock), daemon.WithServices((&fakeEngine{}).services()))
	c := dial(t, "unix://"+sock)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	du, err := c.Control().DiskUsage(ctx, &api.DiskUsageRequest{})
	if err != nil || len(du.Records) != 1 || du.Records[0].Size != 42 {
		t.Fatalf("DiskUsage = %v, %v", du, err)
	}
	_, err = c.Control().DiskUsage(ctx, &api.DiskUsageRequest{Filters: []string{"id=x"}})
	err = c.WrapErr(err)
	if !errdefs.IsNotFound(err) || err.Error() != `no records match "id=x"` {
		t.Errorf("DiskUsage error = %v (not-found class: %v)", err, errdefs.IsNotFound(err))
	}
	ps, err := c.Control().Prune(ctx, &api.PruneRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := ps.Recv(); err != nil || rec.Id != "gone" {
		t.Errorf("Prune = %v, %v", rec, err)
	}
	_, err = c.Control().ListImages(ctx, &api.ListImagesRequest{})
	if !errors.Is(c.WrapErr(err), errdefs.ErrUnimplemented) {
		t.Errorf("ListImages without an image service: %v, want unimplemented", err)
	}

	for ref, want := range map[string]string{"app": "", "": "Dockerfile:3: unknown instruction: FORM"} {
		stream, err := c.Control().Build(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&api.BuildClientMessage{Msg: &api.BuildClientMessage_Request{Request: &api.BuildRequest{Ref: ref}}}); err != nil {
			t.Fatal(err)
		}
		m, err := stream.Recv()
		if want == "" {
			if err != nil || m.GetResult().GetExporterResponse()["ref"] != ref {
				t.Errorf("Build(%q) = %v, %v", ref, m, err)
			}
			continue
		}
		err = c.WrapErr(err)
		if !errdefs.IsInvalidArgument(err) || err.Error() != want {
			t.Errorf("Build(%q) error = %v, want invalid argument %q", ref, err, want)
		}
	}
}

func TestShutdownCancelsRequestsAndRemovesSocket(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	fb := &fakeEngine{started: make(chan struct{}), ended: make(chan error, 1)}
	r := start(t, testConfig(t, "unix://"+sock), daemon.WithServices(fb.services()))
	c := dial(t, "unix://"+sock)
	stream, err := c.Control().Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&api.BuildClientMessage{Msg: &api.BuildClientMessage_Request{Request: &api.BuildRequest{Ref: "block"}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fb.started:
	case <-time.After(10 * time.Second):
		t.Fatal("build did not start")
	}
	r.stop()
	select {
	case cause := <-fb.ended:
		if cause == nil || !strings.Contains(cause.Error(), "shutting down") {
			t.Errorf("build canceled with cause %v, want the shutdown", cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not cancel the build in flight")
	}
	if _, err := stream.Recv(); !errors.Is(c.WrapErr(err), errdefs.ErrCanceled) && !errdefs.IsUnavailable(c.WrapErr(err)) {
		t.Errorf("client saw %v, want canceled or unavailable", c.WrapErr(err))
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		r.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still exists after shutdown: %v", err)
	}
}

func TestStaleSocketIsReplacedLiveOneIsNot(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	if err := os.MkdirAll(filepath.Dir(sock), 0o711); err != nil {
		t.Fatal(err)
	}
	// A socket file left by a dead daemon.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	start(t, testConfig(t, "unix://"+sock))
	info(t, dial(t, "unix://"+sock))

	// A live socket is not taken over.
	srv, err := daemon.New(context.Background(), testConfig(t, "unix://"+sock), daemon.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Listen()
	if err == nil || !strings.Contains(err.Error(), "another process is listening on it") {
		t.Errorf("Listen on a live socket: %v", err)
	}
	// A path that is not a socket is left alone.
	file := filepath.Join(filepath.Dir(sock), "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err = daemon.New(context.Background(), testConfig(t, "unix://"+file), daemon.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Listen on a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Error("the regular file was changed")
	}
}

func TestSocketOwner(t *testing.T) {
	t.Parallel()
	testroot.Require(t, "chown of the socket")
	sock := socketPath(t)
	cfg := testConfig(t, "unix://"+sock)
	uid, gid := 4321, 8765
	cfg.GRPC.UID, cfg.GRPC.GID = &uid, &gid
	start(t, cfg)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("socket owner = %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
}

func TestClientMessagesWhenNothingListens(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().String()
	l.Close()
	tests := []struct {
		addr, want string
	}{
		{"unix://" + sock, "cannot reach kilnd at unix://" + sock + ": no such socket. Start it with \"sudo kilnd --addr unix://" + sock + "\" (or set KILN_HOST / --addr)."},
		{"tcp://" + closedPort, "cannot reach kilnd at tcp://" + closedPort + ": connection refused. Start it with \"sudo kilnd --addr tcp://" + closedPort + "\" (or set KILN_HOST / --addr)."},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := dial(t, tt.addr).Info(ctx)
		cancel()
		if err == nil || err.Error() != tt.want {
			t.Errorf("Info(%s) error:\n got: %v\nwant: %s", tt.addr, err, tt.want)
		}
		if !errdefs.IsUnavailable(err) {
			t.Errorf("Info(%s) error %v is not in the unavailable class", tt.addr, err)
		}
	}
}

func TestOverlaySnapshotterMustWork(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "unix://"+socketPath(t))
	cfg.Worker.OCI.Snapshotter = "overlayfs"
	w, err := daemon.DetectWorker(context.Background(), cfg)
	if os.Geteuid() != 0 {
		// Without root an overlay mount fails: asking for it is an error.
		if err == nil || !strings.Contains(err.Error(), `snapshotter = "overlayfs", but overlay does not work`) {
			t.Errorf("DetectWorker(overlayfs) without root = %v, %v", w, err)
		}
		return
	}
	if err != nil {
		t.Skipf("overlay does not work here: %v", err)
	}
	if w.Snapshotter != "overlayfs" {
		t.Errorf("snapshotter = %q", w.Snapshotter)
	}
	cfg.Worker.OCI.Snapshotter = "auto"
	if w, err := daemon.DetectWorker(context.Background(), cfg); err != nil || w.Snapshotter != "overlayfs" {
		t.Errorf("auto where overlay works = %v, %v; want overlayfs", w, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(cfg.Root, "tmp")); len(entries) != 0 {
		t.Errorf("the probe left %d entries in root/tmp", len(entries))
	}
}
