package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/core/errdefs"
)

// HostConfig is the configuration of one registry host, keyed by host[:port]
// in the map given to New (kilnd.toml's [registry."host"] and
// [[registry.config]] tables).
type HostConfig struct {
	// Mirrors are tried in order before this host, for pulls only. Each is
	// host[:port], optionally with a path prefix put before the repository
	// ("harbor.local/hub-proxy") and an "http://" or "https://" scheme;
	// otherwise the mirror host's own HostConfig says how to reach it.
	Mirrors []string
	// PlainHTTP talks HTTP instead of HTTPS to this host (with Insecure
	// too: HTTPS without verification first, then HTTP, as BuildKit does).
	// Without it only loopback hosts (localhost, 127.0.0.0/8, ::1) may fall
	// back to HTTP, as with Docker.
	PlainHTTP bool
	// Insecure skips TLS certificate verification for this host.
	Insecure bool
	// CAFiles are PEM files of CAs trusted for this host, besides the
	// system roots.
	CAFiles []string
	// KeyPairs are client certificates presented to this host.
	KeyPairs []KeyPair
	// ConfigFile is a docker config.json whose credentials (auths: auth,
	// username/password, identitytoken; credsStore/credHelpers) are used
	// for this host. It is read on each use, so a new `docker login` is
	// seen without a restart.
	ConfigFile string
	// Username and Password are credentials for this host; they win over
	// ConfigFile.
	Username, Password string
}

// KeyPair is a client certificate and its private key, both PEM files.
type KeyPair struct {
	CertFile, KeyFile string
}

// CredentialFunc returns the credentials a build's client has for host (a
// HostKey: "docker.io" for Docker Hub, else host[:port]). ok is false when
// the client has none. The daemon implements it per build by asking the
// client over the build stream. The Resolver calls it once per request per
// endpoint (mirror or origin), so an implementation should cache answers for
// the build's lifetime; an error fails that endpoint.
type CredentialFunc func(ctx context.Context, host string) (cfg authn.AuthConfig, ok bool, err error)

// Option configures a Resolver.
type Option func(*Resolver)

// WithLogger sets where mirror failures and credential problems are logged.
// The default discards them.
func WithLogger(l *slog.Logger) Option { return func(r *Resolver) { r.log = l } }

// WithTransport sets the HTTP transport every host's transport is cloned
// from (proxies, timeouts). The default is go-containerregistry's.
func WithTransport(t *http.Transport) Option { return func(r *Resolver) { r.base = t } }

// WithUserAgent sets the User-Agent sent to registries.
func WithUserAgent(ua string) Option { return func(r *Resolver) { r.userAgent = ua } }

// WithRetryBackoff sets how requests to an origin registry are retried on
// temporary failures (network flakes, 5xx, 429). Mirrors are never retried:
// the next endpoint is tried instead.
func WithRetryBackoff(b remote.Backoff) Option { return func(r *Resolver) { r.backoff = &b } }

// Resolver turns references into registry requests. It is safe for
// concurrent use; WithCredentials derives per-build resolvers that share its
// connections.
type Resolver struct {
	hosts     map[string]*host // by HostKey
	fallback  *host            // for hosts without configuration
	creds     CredentialFunc
	log       *slog.Logger
	base      *http.Transport
	userAgent string
	backoff   *remote.Backoff
}

// host is one host's configuration with its parsed mirrors and transport.
type host struct {
	key       string
	cfg       HostConfig
	mirrors   []mirror
	transport http.RoundTripper
}

// mirror is one parsed HostConfig.Mirrors entry.
type mirror struct {
	raw      string
	registry string // host[:port]
	prefix   string // path before the repository, may be empty
	scheme   string // "http", "https" or "" (the mirror host's config decides)
}

// New returns a Resolver for the given per-host configuration. Keys are
// registry hosts (host[:port]; Docker Hub's aliases count as "docker.io").
// It fails when a key or mirror is malformed, two keys name one host, or a
// CA, key pair or config file cannot be read.
func New(hosts map[string]HostConfig, opts ...Option) (*Resolver, error) {
	r := &Resolver{
		hosts: map[string]*host{},
		log:   slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(r)
	}
	if r.base == nil {
		r.base = remote.DefaultTransport.(*http.Transport)
	}
	keys := make([]string, 0, len(hosts))
	for k := range hosts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, raw := range keys {
		key := HostKey(raw)
		if _, err := name.NewRegistry(key, name.StrictValidation); err != nil || key == "" {
			return nil, errdefs.Invalidf("registry host %q: not a host[:port]", raw)
		}
		if _, dup := r.hosts[key]; dup {
			return nil, errdefs.Invalidf("registry host %q: configured twice (as %q too)", raw, key)
		}
		h, err := newHost(key, hosts[raw], r.base)
		if err != nil {
			return nil, err
		}
		r.hosts[key] = h
	}
	r.fallback = &host{transport: r.base.Clone()}
	return r, nil
}

func newHost(key string, cfg HostConfig, base *http.Transport) (*host, error) {
	h := &host{key: key, cfg: cfg}
	for _, m := range cfg.Mirrors {
		pm, err := parseMirror(m)
		if err != nil {
			return nil, errdefs.Invalidf("registry host %s: mirror %q: %v", key, m, err)
		}
		h.mirrors = append(h.mirrors, pm)
	}
	t := base.Clone()
	if cfg.Insecure || len(cfg.CAFiles) > 0 || len(cfg.KeyPairs) > 0 {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.Insecure} //nolint:gosec // only when the host is configured insecure
		if t.TLSClientConfig != nil {
			tc = t.TLSClientConfig.Clone()
			tc.InsecureSkipVerify = cfg.Insecure
		}
		if len(cfg.CAFiles) > 0 {
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			for _, f := range cfg.CAFiles {
				pem, err := os.ReadFile(f)
				if err != nil {
					return nil, errdefs.Invalidf("registry host %s: ca: %v", key, err)
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, errdefs.Invalidf("registry host %s: ca %s: no PEM certificate in it", key, f)
				}
			}
			tc.RootCAs = pool
		}
		for _, kp := range cfg.KeyPairs {
			pair, err := tls.LoadX509KeyPair(kp.CertFile, kp.KeyFile)
			if err != nil {
				return nil, errdefs.Invalidf("registry host %s: keypair %s, %s: %v", key, kp.CertFile, kp.KeyFile, err)
			}
			tc.Certificates = append(tc.Certificates, pair)
		}
		t.TLSClientConfig = tc
	}
	h.transport = t
	if cfg.ConfigFile != "" {
		if _, err := loadDockerConfig(cfg.ConfigFile); err != nil {
			return nil, errdefs.Invalidf("registry host %s: %v", key, err)
		}
	}
	if cfg.Password != "" && cfg.Username == "" {
		return nil, errdefs.Invalidf("registry host %s: password without username", key)
	}
	return h, nil
}

func parseMirror(s string) (mirror, error) {
	m := mirror{raw: s}
	rest := strings.TrimSpace(s)
	if scheme, after, ok := strings.Cut(rest, "://"); ok {
		if scheme != "http" && scheme != "https" {
			return m, fmt.Errorf("scheme %q: want http or https", scheme)
		}
		m.scheme, rest = scheme, after
	}
	rest = strings.Trim(rest, "/")
	m.registry, m.prefix, _ = strings.Cut(rest, "/")
	if m.registry == "" {
		return m, fmt.Errorf("no host")
	}
	if _, err := name.NewRegistry(m.registry, name.StrictValidation); err != nil {
		return m, fmt.Errorf("not a host[:port]")
	}
	if m.prefix != "" {
		if _, err := name.NewRepository(m.registry+"/"+m.prefix+"/x", name.StrictValidation); err != nil {
			return m, fmt.Errorf("path %q is not a repository prefix", m.prefix)
		}
	}
	return m, nil
}

// WithCredentials returns a Resolver that also uses the credentials f
// returns (a build's client's), ahead of the configured ones. It shares r's
// configuration and connections; r is unchanged.
func (r *Resolver) WithCredentials(f CredentialFunc) *Resolver {
	c := *r
	c.creds = f
	return &c
}

// hostFor returns the configuration of a registry host, or the fallback.
func (r *Resolver) hostFor(registry string) *host {
	if h, ok := r.hosts[HostKey(registry)]; ok {
		return h
	}
	return r.fallback
}

// endpoint is one registry a request can go to: a mirror or the origin.
type endpoint struct {
	ref    name.Reference // the reference on this endpoint
	host   string         // host[:port] as in URLs
	key    string         // HostKey(host)
	conf   *host
	plain  bool // HTTP only
	mirror bool
}

// endpoints lists where a request for ref may go: for pulls the origin's
// mirrors in order and then the origin, for pushes only the origin.
func (r *Resolver) endpoints(ref name.Reference, pull bool) ([]endpoint, error) {
	reg := ref.Context().RegistryStr()
	origin := r.hostFor(reg)
	var eps []endpoint
	if pull {
		for _, m := range origin.mirrors {
			conf := r.hostFor(m.registry)
			plain := conf.cfg.PlainHTTP
			if m.scheme != "" {
				plain = m.scheme == "http"
			}
			mref, err := withRegistry(ref, m.registry, m.prefix, plain)
			if err != nil {
				return nil, errdefs.Invalidf("mirror %s for %s: %v", m.raw, NormalizedName(ref), err)
			}
			eps = append(eps, endpoint{ref: mref, host: m.registry, key: HostKey(m.registry), conf: conf, plain: plain, mirror: true})
		}
	}
	oref, err := withRegistry(ref, reg, "", origin.cfg.PlainHTTP)
	if err != nil {
		return nil, errdefs.Invalidf("%s: %v", NormalizedName(ref), err)
	}
	eps = append(eps, endpoint{ref: oref, host: reg, key: HostKey(reg), conf: origin, plain: origin.cfg.PlainHTTP})
	return eps, nil
}

// remoteOptions returns the go-containerregistry options for one endpoint
// and the credentials they carry (for error messages).
func (r *Resolver) remoteOptions(ctx context.Context, ep endpoint) ([]remote.Option, credential, error) {
	cred, err := r.credentialsFor(ctx, ep.key, ep.conf)
	if err != nil {
		return nil, cred, err
	}
	auth := authn.Anonymous
	if !cred.empty() {
		auth = authn.FromConfig(cred.cfg)
	}
	guard := newSchemeGuard(ep.conf.transport, ep.host, ep.plain, ep.conf.cfg.Insecure)
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(guard),
		remote.WithAuth(auth),
	}
	if r.userAgent != "" {
		opts = append(opts, remote.WithUserAgent(r.userAgent))
	}
	switch {
	case ep.mirror:
		opts = append(opts, remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	case r.backoff != nil:
		opts = append(opts, remote.WithRetryBackoff(*r.backoff))
	}
	return opts, cred, nil
}
