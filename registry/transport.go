package registry

import (
	"fmt"
	"net/http"
)

// schemeGuard enforces a host's scheme policy under go-containerregistry,
// which tries HTTPS and falls back to HTTP by its own rules (it also allows
// HTTP for RFC 1918 and .local hosts). Requests to the registry host itself
// go out only as the configuration allows: HTTP only for PlainHTTP hosts,
// HTTPS only for other hosts except loopback ones, which may fall back to
// HTTP as with Docker. Redirects to other hosts (blob storage) pass.
type schemeGuard struct {
	base      http.RoundTripper
	host      string // host[:port] as in request URLs
	plainHTTP bool
	allowHTTP bool
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
		switch req.URL.Scheme {
		case "https":
			if g.plainHTTP {
				closeBody(req)
				return nil, &errScheme{host: g.host, scheme: "https"}
			}
		case "http":
			if !g.allowHTTP {
				closeBody(req)
				return nil, &errScheme{host: g.host, scheme: "http"}
			}
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
