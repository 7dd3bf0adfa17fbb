package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// schemeGuard enforces a host's scheme policy under go-containerregistry,
// which tries HTTPS and falls back to HTTP by its own rules (it also allows
// HTTP for RFC 1918 and .local hosts). Requests to the registry host itself
// go out only as the configuration allows: HTTP only for PlainHTTP hosts
// (HTTPS first when they are Insecure too, as BuildKit does), HTTPS only for
// other hosts except loopback ones, which may fall back to HTTP as with
// Docker. Redirects to other hosts (blob storage) pass.
type schemeGuard struct {
	base       http.RoundTripper
	host       string // host[:port] as in request URLs
	allowHTTPS bool
	allowHTTP  bool
}

func newSchemeGuard(base http.RoundTripper, host string, plainHTTP, insecure bool) *schemeGuard {
	return &schemeGuard{
		base:       base,
		host:       host,
		allowHTTPS: !plainHTTP || insecure,
		allowHTTP:  plainHTTP || isLoopback(host),
	}
}

// errScheme is the error a refused request gets.
type errScheme struct {
	host   string
	scheme string
}

func (e *errScheme) Error() string {
	if e.scheme == "http" {
		return fmt.Sprintf("plain HTTP to %s is not allowed: set http = true for it in the registry configuration", e.host)
	}
	return fmt.Sprintf("%s is configured for plain HTTP", e.host)
}

func (g *schemeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == g.host {
		if (req.URL.Scheme == "https" && !g.allowHTTPS) || (req.URL.Scheme == "http" && !g.allowHTTP) {
			closeBody(req)
			return nil, &errScheme{host: g.host, scheme: req.URL.Scheme}
		}
	}
	return g.base.RoundTrip(req)
}

// closeBody honours the RoundTripper contract for refused requests.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// connDropped reports whether err is a connection closed under a request:
// what a TLS 1.3 client sees when the server rejects its certificate (or
// the lack of one) after the handshake and closes before the alert is read.
func connDropped(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// probeTLS tells why a TLS registry dropped a connection: it shakes hands
// with the host's TLS settings, sends a request and reads the answer, which
// is the server's alert when it wants a client certificate. It returns that
// error, or nil when the probe saw nothing wrong.
func probeTLS(ctx context.Context, rt http.RoundTripper, host string) error {
	t, ok := rt.(*http.Transport)
	if !ok {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.TLSClientConfig != nil {
		cfg = t.TLSClientConfig.Clone()
	}
	if cfg.ServerName == "" {
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			h = host
		}
		cfg.ServerName = h
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", hostPort(host))
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, "GET /v2/ HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil && !errors.Is(err, io.EOF) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	}
	return nil
}

// hostPort adds the HTTPS port to a host without one.
func hostPort(host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "443")
}
