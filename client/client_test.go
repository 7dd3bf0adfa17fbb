package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestResolveAddress(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		flag string
		env  map[string]string
		want string
	}{
		{"tcp://h:1", map[string]string{EnvHost: "unix:///x.sock"}, "tcp://h:1"},
		{"", map[string]string{EnvHost: "unix:///x.sock"}, "unix:///x.sock"},
		{"", nil, DefaultAddress},
	}
	for _, tt := range tests {
		if got := ResolveAddress(tt.flag, env(tt.env)); got != tt.want {
			t.Errorf("ResolveAddress(%q, %v) = %q, want %q", tt.flag, tt.env, got, tt.want)
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		opts []Option
		want string
	}{
		{"localhost:1234", nil, `bad kilnd address "localhost:1234": want unix:///path/to/kilnd.sock or tcp://host:port`},
		{"unix://relative", nil, `bad kilnd address "unix://relative"`},
		{"tcp://host", nil, `bad kilnd address "tcp://host": want tcp://host:port`},
		{"tcp://host:0", nil, `bad kilnd address "tcp://host:0": want tcp://host:port`},
		{"unix:///run/kiln/kilnd.sock", []Option{WithTLSFiles(notPEM, "", "")}, "no PEM certificates"},
		{"tcp://h:1", []Option{WithTLSFiles(notPEM, "", "")}, "--tlscacert " + notPEM + ": no PEM certificates in it"},
		{"tcp://h:1", []Option{WithTLSFiles("", "cert.pem", "")}, "--tlscert and --tlskey go together"},
		{"tcp://h:1", []Option{WithTLSFiles(filepath.Join(dir, "nope.pem"), "", "")}, "read --tlscacert"},
	}
	for _, tt := range tests {
		c, err := New(tt.addr, tt.opts...)
		if err == nil {
			c.Close()
			t.Errorf("New(%q) succeeded, want error containing %q", tt.addr, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q) = %v, want error containing %q", tt.addr, err, tt.want)
		}
	}
	// TLS over a unix socket is refused with a clear message.
	if _, err := New("unix:///run/kiln/kilnd.sock", WithTLSFiles("", "", "")); err != nil {
		t.Errorf("empty TLS files should mean no TLS: %v", err)
	}
}

func TestWrapErr(t *testing.T) {
	t.Parallel()
	c, err := New("unix:///run/kiln/kilnd.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		err   error
		class error
		msg   string
	}{
		{status.Error(codes.InvalidArgument, "Dockerfile:3: unknown instruction"), errdefs.ErrInvalidArgument, "Dockerfile:3: unknown instruction"},
		{status.Error(codes.NotFound, "image busybox:nope not found"), errdefs.ErrNotFound, "image busybox:nope not found"},
		{status.Error(codes.PermissionDenied, "network.host is not allowed"), errdefs.ErrPermissionDenied, "network.host is not allowed"},
		{status.Error(codes.Unimplemented, "History is not available"), errdefs.ErrUnimplemented, "History is not available"},
		{status.Error(codes.Unimplemented, "unknown method CacheRecords for service kiln.v1.Control"), errdefs.ErrUnimplemented,
			"kilnd at unix:///run/kiln/kilnd.sock does not know CacheRecords: it is older than this kiln (upgrade kilnd)"},
		{status.Error(codes.Unavailable, "redis is down"), errdefs.ErrUnavailable, "redis is down"},
		{status.Error(codes.Canceled, "context canceled"), errdefs.ErrCanceled, "context canceled"},
		{status.Error(codes.Internal, "boom"), errdefs.ErrInternal, "boom"},
	}
	for _, tt := range tests {
		got := c.WrapErr(tt.err)
		if !errors.Is(got, tt.class) || got.Error() != tt.msg {
			t.Errorf("WrapErr(%v) = %v (class ok: %v), want %q in class %v", tt.err, got, errors.Is(got, tt.class), tt.msg, tt.class)
		}
	}
	if got := c.WrapErr(status.Error(codes.Unknown, "odd")); got.Error() != "odd" {
		t.Errorf("unknown code: %v", got)
	}
	plain := errors.New("not a status")
	if c.WrapErr(plain) != plain || c.WrapErr(nil) != nil {
		t.Error("WrapErr changed a non-status error or nil")
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	c, err := New(DefaultAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		dial  error
		class error
		want  string
	}{
		{
			&os.SyscallError{Syscall: "connect", Err: syscall.ENOENT}, errdefs.ErrUnavailable,
			`cannot reach kilnd at unix:///run/kiln/kilnd.sock: no such socket. Start it with "sudo kilnd" (or set KILN_HOST / --addr).`,
		},
		{
			&os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}, errdefs.ErrUnavailable,
			`cannot reach kilnd at unix:///run/kiln/kilnd.sock: no kilnd is listening on the socket. Start it with "sudo kilnd" (or set KILN_HOST / --addr).`,
		},
		{
			&os.SyscallError{Syscall: "connect", Err: syscall.EACCES}, errdefs.ErrPermissionDenied,
			"cannot reach kilnd at unix:///run/kiln/kilnd.sock: permission denied. The socket is for root and its group: run kiln with sudo, or set [grpc] gid in kilnd.toml to a group you are in",
		},
	}
	for _, tt := range tests {
		c.mu.Lock()
		c.dialErr = tt.dial
		c.mu.Unlock()
		got := c.WrapErr(status.Error(codes.Unavailable, fmt.Sprintf("connection error: desc = %q", tt.dial)))
		if got.Error() != tt.want || !errors.Is(got, tt.class) {
			t.Errorf("dial error %v:\n got: %v\nwant: %s", tt.dial, got, tt.want)
		}
	}
	// Calls fail fast with the same message when nothing listens.
	c2, err := New("unix://" + filepath.Join(t.TempDir(), "none.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_, err = c2.Info(context.Background())
	if err == nil || !strings.Contains(err.Error(), ": no such socket. Start it with \"sudo kilnd --addr unix://") {
		t.Errorf("Info with nothing listening: %v", err)
	}
}
