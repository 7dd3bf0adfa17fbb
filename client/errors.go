package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/core/errdefs"
)

// codeClasses maps gRPC codes back to the error classes (the daemon maps
// them the other way in daemon/errors.go).
var codeClasses = map[codes.Code]error{
	codes.InvalidArgument:    errdefs.ErrInvalidArgument,
	codes.NotFound:           errdefs.ErrNotFound,
	codes.AlreadyExists:      errdefs.ErrAlreadyExists,
	codes.FailedPrecondition: errdefs.ErrFailedPrecondition,
	codes.PermissionDenied:   errdefs.ErrPermissionDenied,
	codes.Unauthenticated:    errdefs.ErrUnauthenticated,
	codes.Unimplemented:      errdefs.ErrUnimplemented,
	codes.ResourceExhausted:  errdefs.ErrResourceExhausted,
	codes.Unavailable:        errdefs.ErrUnavailable,
	codes.Canceled:           errdefs.ErrCanceled,
	codes.DeadlineExceeded:   errdefs.ErrDeadlineExceeded,
	codes.Internal:           errdefs.ErrInternal,
}

// remoteError is an error the daemon returned: its message as the daemon
// wrote it, its class from the status code.
type remoteError struct {
	class error
	msg   string
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Unwrap() error { return e.class }

// WrapErr turns an error from an API call into a plain error: the daemon's
// message with its errdefs class (errors.Is(err, errdefs.ErrNotFound)),
// or, when the daemon cannot be reached, a message that says which
// address was tried and how to start kilnd.
func (c *Client) WrapErr(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		if derr := c.lastDialErr(); derr != nil {
			return c.unreachable(derr)
		}
		if msg := st.Message(); isTransport(msg) {
			return c.connectionFailed(msg)
		}
	case codes.Canceled:
		if errors.Is(err, context.Canceled) || st.Message() == context.Canceled.Error() {
			return errdefs.WithClass(errdefs.ErrCanceled, context.Canceled)
		}
	case codes.Unimplemented:
		// gRPC's own answer for an RPC the daemon's API lacks.
		if rest, ok := strings.CutPrefix(st.Message(), "unknown method "); ok {
			method, _, _ := strings.Cut(rest, " ")
			return &remoteError{class: errdefs.ErrUnimplemented, msg: fmt.Sprintf(
				"kilnd at %s does not know %s: it is older than this kiln (upgrade kilnd)", c.addr, method)}
		}
	case codes.DeadlineExceeded:
		if st.Message() == context.DeadlineExceeded.Error() {
			return errdefs.WithClass(errdefs.ErrDeadlineExceeded, fmt.Errorf("kilnd at %s did not answer in time", c.addr))
		}
	}
	class, ok := codeClasses[st.Code()]
	if !ok {
		class = errdefs.ErrInternal
		if st.Code() == codes.Unknown {
			return errors.New(st.Message())
		}
	}
	return &remoteError{class: class, msg: st.Message()}
}

// unreachable explains a failed connection.
func (c *Client) unreachable(derr error) error {
	var why string
	switch {
	case errors.Is(derr, syscall.ENOENT):
		why = "no such socket"
	case errors.Is(derr, syscall.ECONNREFUSED):
		if c.network == "unix" {
			why = "no kilnd is listening on the socket"
		} else {
			why = "connection refused"
		}
	case errors.Is(derr, syscall.EACCES), errors.Is(derr, syscall.EPERM):
		return errdefs.WithClass(errdefs.ErrPermissionDenied, fmt.Errorf(
			"cannot reach kilnd at %s: permission denied. The socket is for root and its group: run kiln with sudo, or set [grpc] gid in kilnd.toml to a group you are in", c.addr))
	case isTimeout(derr):
		why = "timed out"
	default:
		why = derr.Error()
		var oe interface{ Unwrap() error }
		if errors.As(derr, &oe) && oe.Unwrap() != nil {
			why = oe.Unwrap().Error()
		}
	}
	start := `"sudo kilnd"`
	if c.addr != DefaultAddress {
		start = fmt.Sprintf(`"sudo kilnd --addr %s"`, c.addr)
	}
	//lint:ignore ST1005 the message is a sentence that kiln prints as is.
	return errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf(
		"cannot reach kilnd at %s: %s. Start it with %s (or set %s / --addr).", c.addr, why, start, EnvHost))
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// connectionFailed explains a connection that was made and then failed,
// which is how a TLS mismatch usually shows.
func (c *Client) connectionFailed(msg string) error {
	reason := tlsReason(msg)
	switch {
	case c.tls && looksLikeTLS(msg):
		return errdefs.WithClass(errdefs.ErrUnauthenticated, fmt.Errorf(
			"cannot reach kilnd at %s: TLS handshake failed: %s (check --tlscacert, --tlscert and --tlskey)", c.addr, reason))
	case c.tls:
		return errdefs.WithClass(errdefs.ErrUnauthenticated, fmt.Errorf(
			"cannot reach kilnd at %s: the daemon closed the connection (%s); it may not accept this client certificate (check --tlscacert, --tlscert and --tlskey)", c.addr, reason))
	case c.network == "tcp":
		return errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf(
			"cannot reach kilnd at %s: the connection failed (%s); if kilnd serves TLS there, pass --tlscacert, --tlscert and --tlskey", c.addr, reason))
	default:
		return errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf(
			"cannot reach kilnd at %s: the connection failed (%s)", c.addr, reason))
	}
}

// isTransport reports whether an Unavailable message comes from the
// connection rather than from the daemon.
func isTransport(msg string) bool {
	for _, s := range []string{"connection error", "transport", "broken pipe", "EOF", "reset by peer", "preface", "connection closed", "tls:", "x509", "handshake"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func looksLikeTLS(msg string) bool {
	for _, s := range []string{"tls:", "x509:", "certificate", "handshake", "authentication"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// tlsReason keeps the useful tail of a gRPC transport message.
func tlsReason(msg string) string {
	for _, cut := range []string{"desc = ", "transport: "} {
		if i := strings.LastIndex(msg, cut); i >= 0 {
			msg = msg[i+len(cut):]
		}
	}
	msg = strings.TrimPrefix(msg, "authentication handshake failed: ")
	msg = strings.TrimPrefix(msg, "Error while dialing: ")
	return strings.TrimSpace(strings.Trim(msg, `"`))
}
