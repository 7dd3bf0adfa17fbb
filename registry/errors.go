package registry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/core/errdefs"
)

// Error is a failed registry operation. Its message names the operation,
// the reference, the registry and (when it answered) the HTTP status, and
// says what to do; errors.Is matches its class (errdefs.ErrUnauthenticated,
// ErrPermissionDenied, ErrNotFound, ErrUnavailable, ErrResourceExhausted,
// ErrCanceled, ...) and errors.As reaches the underlying error.
type Error struct {
	Op         string // "pull" or "push"
	Ref        string // normalized, e.g. docker.io/library/busybox:latest
	Registry   string // the registry that answered or could not be reached
	StatusCode int    // the HTTP status, 0 when there was no answer
	// Mirrors holds the failures of mirrors tried before the origin.
	Mirrors []*Error

	class  error
	reason string // the part after "op ref: "
	repo   string // the repository path, for messages
	err    error
}

func (e *Error) Error() string {
	msg := e.Op + " " + e.Ref + ": " + e.reason
	if len(e.Mirrors) > 0 {
		parts := make([]string, len(e.Mirrors))
		for i, m := range e.Mirrors {
			parts[i] = m.reason
		}
		msg += " (mirrors tried first: " + strings.Join(parts, "; ") + ")"
	}
	return msg
}

// Unwrap exposes the class and the underlying error.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.class != nil {
		errs = append(errs, e.class)
	}
	if e.err != nil {
		errs = append(errs, e.err)
	}
	return errs
}

// WrapError turns an error from a go-containerregistry call against
// registry into an *Error for op ("pull", "push") on ref. Use it for errors
// that surface later, e.g. while reading a layer of an image the Resolver
// returned. It returns nil for nil and an *Error unchanged.
func WrapError(op string, ref name.Reference, err error) error {
	if err == nil {
		return nil
	}
	var re *Error
	if errors.As(err, &re) {
		return err
	}
	return classify(op, ref, ref.Context().RegistryStr(), credential{unknown: true}, "manifest", err)
}

// classifyAt is classify for a request to ep. When a TLS endpoint dropped
// the connection, it probes the endpoint to tell why (a wanted client
// certificate, typically) instead of reporting a bare "broken pipe".
func (r *Resolver) classifyAt(ctx context.Context, op string, ref name.Reference, ep endpoint, cred credential, what string, err error) *Error {
	// A loopback registry may also have been retried over plain HTTP after
	// the drop (Docker's fallback), which then fails with "HTTP request to
	// an HTTPS server" and hides the TLS problem: probe then too.
	if !ep.plain && ctx.Err() == nil && (connDropped(err) || strings.Contains(err.Error(), "HTTP request to an HTTPS server")) {
		// Only the server's own TLS alert explains the drop; other probe
		// failures say nothing about the request that failed.
		if perr := probeTLS(ctx, ep.conf.transport, ep.host); perr != nil && strings.Contains(perr.Error(), "remote error: tls:") {
			err = errors.Join(perr, err)
		}
	}
	return classify(op, ref, ep.host, cred, what, err)
}

// classify builds the *Error for err from a request for what ("manifest" or
// "blob") of ref at registry, made with cred.
func classify(op string, ref name.Reference, registry string, cred credential, what string, err error) *Error {
	reg := HostKey(registry)
	if reg != DockerHub {
		reg = registry
	}
	e := &Error{Op: op, Ref: NormalizedName(ref), Registry: reg, repo: ref.Context().RepositoryStr(), err: err}
	switch {
	case errors.Is(err, context.Canceled):
		e.class, e.reason = errdefs.ErrCanceled, "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		e.class, e.reason = errdefs.ErrDeadlineExceeded, "timed out talking to registry "+reg
	case errors.As(err, new(*platformError)):
		e.class, e.reason = errdefs.ErrNotFound, err.Error()
	case classifyTLS(e, err):
	case classifyNetwork(e, err):
	case classifyStatus(e, cred, what, err):
	case errors.As(err, new(*errScheme)):
		var se *errScheme
		errors.As(err, &se)
		e.class, e.reason = errdefs.ErrFailedPrecondition, "cannot reach registry "+reg+": "+se.Error()
	case errors.Is(err, remote.ErrSchema1):
		e.class = errdefs.ErrUnimplemented
		e.reason = "registry " + reg + " serves a Docker schema 1 manifest, which is not supported; push the image again with a current client"
	default:
		e.reason = "registry " + reg + ": " + err.Error()
	}
	return e
}

// classifyTLS recognises certificate and TLS handshake problems.
func classifyTLS(e *Error, err error) bool {
	reg := e.Registry
	msg := err.Error()
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA):
		e.reason = "cannot reach registry " + reg + ": its TLS certificate is signed by an unknown authority: add the CA (ca = [...]) for " + reg + " or mark it insecure"
	case errors.As(err, &badHost):
		e.reason = "cannot reach registry " + reg + ": its TLS certificate is not valid for " + badHost.Host + ": " + badHost.Error()
	case errors.As(err, &invalid):
		e.reason = "cannot reach registry " + reg + ": its TLS certificate is invalid: " + invalid.Error()
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"),
		strings.Contains(msg, "first record does not look like a TLS handshake"):
		e.reason = "cannot reach registry " + reg + ": it speaks plain HTTP: set http = true for " + reg
	case strings.Contains(msg, "certificate required"), strings.Contains(msg, "bad certificate"):
		e.reason = "cannot reach registry " + reg + ": it wants a client certificate (TLS " + tlsAlert(msg) + "): set a keypair for " + reg
	case strings.Contains(msg, "HTTP request to an HTTPS server"):
		e.reason = "cannot reach registry " + reg + ": it speaks HTTPS, not plain HTTP: do not set http = true for " + reg
	default:
		return false
	}
	e.class = errdefs.ErrUnavailable
	return true
}

func tlsAlert(msg string) string {
	if strings.Contains(msg, "certificate required") {
		return "certificate required"
	}
	return "bad certificate"
}

// classifyNetwork recognises a registry that cannot be reached at all.
func classifyNetwork(e *Error, err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var netErr net.Error
	var why string
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		why = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		why = "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		why = "no route to host"
	case errors.As(err, &dnsErr):
		why = "cannot resolve " + dnsErr.Name
		if dnsErr.IsNotFound {
			why += ": no such host"
		}
	case errors.As(err, &netErr) && netErr.Timeout():
		why = "timed out"
	case errors.As(err, &opErr):
		why = opErr.Err.Error()
	default:
		return false
	}
	e.class, e.reason = errdefs.ErrUnavailable, "cannot reach registry "+e.Registry+": "+why
	return true
}

// classifyStatus turns an HTTP error answer into a class and advice.
func classifyStatus(e *Error, cred credential, what string, err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	reg := e.Registry
	e.StatusCode = te.StatusCode
	status := fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode))
	detail := diagnostic(te)
	switch {
	case te.StatusCode == http.StatusUnauthorized:
		e.class = errdefs.ErrUnauthenticated
		switch {
		case cred.unknown:
			e.reason = fmt.Sprintf("registry %s answered %s: check the credentials for %s", reg, status, reg)
		case cred.empty():
			e.reason = fmt.Sprintf("registry %s answered %s: no credentials for %s: log in on the client (docker login %s) or configure username/password or config-file for %s", reg, status, reg, reg, reg)
			if reg == DockerHub {
				e.reason += " (Docker Hub also answers so when the repository does not exist)"
			}
		default:
			e.reason = fmt.Sprintf("registry %s answered %s: check the credentials for %s (wrong password?); they came from %s", reg, status, reg, cred.source)
		}
	case te.StatusCode == http.StatusForbidden:
		e.class = errdefs.ErrPermissionDenied
		who := "anonymous access"
		switch {
		case cred.unknown:
			who = "the credentials used"
		case !cred.empty():
			who = "the credentials from " + cred.source
		}
		e.reason = fmt.Sprintf("registry %s answered %s: %s may not %s this repository%s", reg, status, who, e.Op, suffix(detail))
	case te.StatusCode == http.StatusNotFound:
		e.class = errdefs.ErrNotFound
		e.reason = fmt.Sprintf("registry %s: %s (%s)", reg, notFoundWhat(te, what, e.repo), status)
	case te.StatusCode == http.StatusTooManyRequests:
		e.class = errdefs.ErrResourceExhausted
		e.reason = fmt.Sprintf("registry %s answered %s: rate limit reached; wait, or log in for a higher limit%s", reg, status, suffix(detail))
	case te.StatusCode >= 500:
		e.class = errdefs.ErrUnavailable
		e.reason = fmt.Sprintf("registry %s answered %s%s", reg, status, suffix(detail))
	case te.StatusCode == http.StatusMethodNotAllowed:
		e.class = errdefs.ErrUnimplemented
		e.reason = fmt.Sprintf("registry %s answered %s: it does not allow this (a read-only mirror?)%s", reg, status, suffix(detail))
	default:
		if te.StatusCode == http.StatusBadRequest {
			e.class = errdefs.ErrInvalidArgument
		}
		e.reason = fmt.Sprintf("registry %s answered %s%s", reg, status, suffix(detail))
	}
	return true
}

// notFoundWhat says what a 404 was about, from the registry's error code or
// else from what was asked for.
func notFoundWhat(te *transport.Error, what, repo string) string {
	for _, d := range te.Errors {
		switch d.Code {
		case transport.ManifestUnknownErrorCode:
			return "manifest unknown"
		case transport.NameUnknownErrorCode:
			return "repository " + repo + " unknown"
		case transport.BlobUnknownErrorCode:
			return "blob unknown"
		}
	}
	return what + " unknown"
}

// diagnostic returns the registry's own error text, if it sent one.
func diagnostic(te *transport.Error) string {
	parts := make([]string, 0, len(te.Errors))
	for _, d := range te.Errors {
		s := string(d.Code)
		if d.Message != "" {
			s += ": " + d.Message
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func suffix(detail string) string {
	if detail == "" {
		return ""
	}
	return " (" + detail + ")"
}
