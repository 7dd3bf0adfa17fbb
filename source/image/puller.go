package image

import (
	"context"
	"log/slog"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/internal/flight"
	"github.com/kiln-build/kiln/registry"
	"github.com/kiln-build/kiln/session"
	"github.com/kiln-build/kiln/snapshot"
)

// defaultDownloads is how many layers one pull downloads at a time, as
// Docker's max-concurrent-downloads.
const defaultDownloads = 3

// Puller resolves and pulls images into the content store and the
// snapshotter. One Puller serves the whole daemon; WithCredentials derives
// the per-build view that also uses a build's client credentials. It is
// safe for concurrent use.
type Puller struct {
	reg  *registry.Resolver
	pull bool // resolve tags with the registry, not the local image store
	*shared
}

// shared is what every view of a Puller shares: storage and the runs in
// flight, so that two builds pulling one image download it once.
type shared struct {
	base      *registry.Resolver
	cs        content.Store
	sn        *snapshot.Snapshotter
	images    *imagestore.Store
	log       *slog.Logger
	downloads int

	blobs   flight.Group[struct{}] // by blob digest: downloads into the content store
	unpacks flight.Group[struct{}] // by chain ID: unpacks into the snapshotter
}

// Option configures a Puller.
type Option func(*shared)

// WithLogger sets where the puller logs (fallbacks, skipped work). The
// default discards.
func WithLogger(l *slog.Logger) Option { return func(s *shared) { s.log = l } }

// WithMaxDownloads sets how many layers one pull downloads at a time
// (default 3). Values below 1 mean 1.
func WithMaxDownloads(n int) Option {
	return func(s *shared) { s.downloads = max(n, 1) }
}

// NewPuller returns a puller that fetches through r, keeps blobs in cs,
// unpacks layers into sn and looks names up in images first. images may
// be nil (no local named images); sn may be nil for a puller that only
// resolves (Pull then fails for images with layers).
func NewPuller(r *registry.Resolver, cs content.Store, sn *snapshot.Snapshotter, images *imagestore.Store, opts ...Option) *Puller {
	s := &shared{
		base:      r,
		cs:        cs,
		sn:        sn,
		images:    images,
		log:       slog.New(slog.DiscardHandler),
		downloads: defaultDownloads,
	}
	for _, o := range opts {
		o(s)
	}
	return &Puller{reg: r, shared: s}
}

// Pulling returns a view of p that resolves tags with the registry even
// when the local image store has them (kiln build --pull). A reference by
// digest is still served from the content store when it has the blobs.
func (p *Puller) Pulling() *Puller {
	v := *p
	v.pull = true
	return &v
}

// WithCredentials returns a view of p that also uses the credentials creds
// returns (a build's client's, ahead of the daemon's configured ones; see
// registry.Resolver.WithCredentials). Answers are cached per host for the
// view's lifetime, so use one view per build (or per pull). A nil creds
// returns a view with the daemon's credentials only. p is unchanged; the
// view shares p's storage and the downloads in flight.
func (p *Puller) WithCredentials(creds registry.CredentialFunc) *Puller {
	if creds == nil {
		return &Puller{reg: p.base, pull: p.pull, shared: p.shared}
	}
	return &Puller{reg: p.base.WithCredentials(cacheCredentials(creds)), pull: p.pull, shared: p.shared}
}

// cacheCredentials remembers fn's answer per host. Concurrent first
// requests for one host ask once; errors are not remembered (the next
// request asks again).
func cacheCredentials(fn registry.CredentialFunc) registry.CredentialFunc {
	type entry struct {
		mu   sync.Mutex
		done bool
		cfg  authn.AuthConfig
		ok   bool
	}
	var (
		mu      sync.Mutex
		entries = map[string]*entry{}
	)
	return func(ctx context.Context, host string) (authn.AuthConfig, bool, error) {
		mu.Lock()
		e := entries[host]
		if e == nil {
			e = &entry{}
			entries[host] = e
		}
		mu.Unlock()
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.done {
			return e.cfg, e.ok, nil
		}
		cfg, ok, err := fn(ctx, host)
		if err != nil {
			return authn.AuthConfig{}, false, err
		}
		e.cfg, e.ok, e.done = cfg, ok, true
		return cfg, ok, nil
	}
}

// SessionCredentials adapts a build session's Credentials to a
// registry.CredentialFunc for WithCredentials and WithOpCredentials. A
// client that has no credentials for a host, or cannot answer at all
// (errdefs.ErrNotFound), leaves the daemon's own credentials in use.
func SessionCredentials(s session.Session) registry.CredentialFunc {
	return func(ctx context.Context, host string) (authn.AuthConfig, bool, error) {
		c, ok, err := s.Credentials(ctx, host)
		if errdefs.IsNotFound(err) {
			return authn.AuthConfig{}, false, nil
		}
		if err != nil || !ok {
			return authn.AuthConfig{}, false, err
		}
		return authn.AuthConfig{Username: c.Username, Password: c.Secret, IdentityToken: c.IdentityToken}, true, nil
	}
}
