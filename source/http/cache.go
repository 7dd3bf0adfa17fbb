package http

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kiln-build/kiln/internal/flight"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
)

// maxRedirects is how many redirects a download follows (as curl
// --max-redirs 10: the 11th is an error).
const maxRedirects = 10

// Resource is what the cache knows about one URL's current body.
type Resource struct {
	// Digest is the sha256 digest of the body.
	Digest digest.Digest
	// Size is the body's length in bytes.
	Size int64
	// ModTime is the Last-Modified time the server sent, or zero.
	ModTime time.Time
	// Filename is the file name from the Content-Disposition header, or "".
	Filename string
}

// entry is the record kept per URL in <dir>/meta.
type entry struct {
	URL          string        `json:"url"` // credentials redacted; for people reading the cache
	ETag         string        `json:"etag,omitempty"`
	LastModified string        `json:"lastModified,omitempty"` // the raw header
	Filename     string        `json:"filename,omitempty"`     // from Content-Disposition
	Digest       digest.Digest `json:"digest"`
	Size         int64         `json:"size"`
}

func (e *entry) resource() Resource {
	r := Resource{Digest: e.Digest, Size: e.Size, Filename: e.Filename}
	if e.LastModified != "" {
		if t, err := http.ParseTime(e.LastModified); err == nil {
			r.ModTime = t.UTC()
		}
	}
	return r
}

// Cache keeps downloaded bodies by content digest under one directory,
// with per-URL records of the validators (ETag, Last-Modified) the server
// sent, so that a repeat download is a conditional GET that reuses the body
// on 304 Not Modified. Concurrent downloads of one URL share one request.
//
// Layout of dir (the daemon passes <root>/http):
//
//	blobs/sha256/<hex>   bodies
//	meta/<sha256(url)>   one JSON record per URL; its mtime is the last use
//	tmp/                 downloads in progress (emptied by NewCache)
type Cache struct {
	dir       string
	client    *http.Client
	userAgent string
	flights   flight.Group[Resource]
}

// CacheOption configures a Cache.
type CacheOption func(*Cache)

// WithTransport makes the cache download through rt instead of a clone of
// http.DefaultTransport (which honours the daemon's proxy environment).
func WithTransport(rt http.RoundTripper) CacheOption {
	return func(c *Cache) { c.client.Transport = rt }
}

// WithUserAgent sets the User-Agent header of downloads (default "kiln").
func WithUserAgent(ua string) CacheOption {
	return func(c *Cache) { c.userAgent = ua }
}

// NewCache returns a cache keeping its files in dir, creating it if
// needed. Downloads a crashed daemon left half-done are removed. One
// process should hold one Cache per directory.
func NewCache(dir string, opts ...CacheOption) (*Cache, error) {
	if dir == "" {
		return nil, errdefs.Invalidf("http cache: empty directory")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	// Keep the bytes as served: a .tar.gz sent with Content-Encoding: gzip
	// must stay compressed (ADD never unpacks a download).
	tr.DisableCompression = true
	c := &Cache{
		dir:       dir,
		userAgent: "kiln",
		client: &http.Client{
			Transport: tr,
			CheckRedirect: func(_ *http.Request, via []*http.Request) error {
				if len(via) > maxRedirects {
					return fmt.Errorf("stopped after %d redirects", maxRedirects)
				}
				return nil
			},
		},
	}
	for _, o := range opts {
		o(c)
	}
	if err := os.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		return nil, fmt.Errorf("http cache: remove unfinished downloads: %w", err)
	}
	for _, d := range []string{"blobs/sha256", "meta", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("http cache: %w", err)
		}
	}
	return c, nil
}

// Fetch makes sure the cache holds the current body of rawURL and
// describes it. If the cache has a body for the URL it sends a conditional
// GET and keeps the body on 304 Not Modified. Redirects are followed (at
// most 10). A status other than 2xx or 304 is an error whose message is
// the status ("404 Not Found"), classed by errdefs (NotFound for 404 and
// 410, Unavailable for 5xx and 429, ...).
func (c *Cache) Fetch(ctx context.Context, rawURL string) (Resource, error) {
	return c.flights.Do(ctx, rawURL, func(ctx context.Context, _ *flight.Call) (Resource, error) {
		return c.fetch(ctx, rawURL)
	})
}

func (c *Cache) fetch(ctx context.Context, rawURL string) (Resource, error) {
	metaPath := filepath.Join(c.dir, "meta", urlKey(rawURL))
	old := c.readEntry(metaPath)
	if old != nil && !c.hasBlob(old.Digest) {
		old = nil
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return Resource{}, errdefs.Invalidf("invalid URL: %v", err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	conditional := false
	if old != nil {
		if old.ETag != "" {
			req.Header.Set("If-None-Match", old.ETag)
			conditional = true
		}
		if old.LastModified != "" {
			req.Header.Set("If-Modified-Since", old.LastModified)
			conditional = true
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return Resource{}, requestError(ctx, err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusNotModified && conditional:
		now := time.Now()
		_ = os.Chtimes(metaPath, now, now) // last use, for Prune
		return old.resource(), nil
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	default:
		return Resource{}, statusError(resp)
	}

	d, size, err := c.storeBlob(resp.Body)
	if err != nil {
		return Resource{}, err
	}
	e := &entry{
		URL:          redact(rawURL),
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
		Filename:     dispositionName(resp.Header.Get("Content-Disposition")),
		Digest:       d,
		Size:         size,
	}
	if err := c.writeEntry(metaPath, e); err != nil {
		return Resource{}, err
	}
	return e.resource(), nil
}

// Open opens the body with content digest d (from a Resource).
func (c *Cache) Open(d digest.Digest) (*os.File, error) {
	if err := d.Validate(); err != nil || d.Algorithm() != digest.SHA256 {
		return nil, errdefs.Invalidf("http cache: invalid body digest %q", d)
	}
	f, err := os.Open(c.blobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFoundf("http cache: body %s not found", d)
	}
	return f, err
}

// Prune removes the records of URLs not fetched since unusedSince and the
// bodies no record refers to, except bodies stored since unusedSince. It
// returns the bytes freed.
func (c *Cache) Prune(ctx context.Context, unusedSince time.Time) (int64, error) {
	metaDir := filepath.Join(c.dir, "meta")
	ents, err := os.ReadDir(metaDir)
	if err != nil {
		return 0, fmt.Errorf("http cache: prune: %w", err)
	}
	keep := map[digest.Digest]bool{}
	var freed int64
	for _, de := range ents {
		if err := ctx.Err(); err != nil {
			return freed, context.Cause(ctx)
		}
		p := filepath.Join(metaDir, de.Name())
		info, err := de.Info()
		if err != nil {
			continue
		}
		e := c.readEntry(p)
		if e == nil || info.ModTime().Before(unusedSince) {
			if err := os.Remove(p); err == nil {
				freed += info.Size()
			}
			continue
		}
		keep[e.Digest] = true
	}
	blobDir := filepath.Join(c.dir, "blobs", "sha256")
	blobs, err := os.ReadDir(blobDir)
	if err != nil {
		return freed, fmt.Errorf("http cache: prune: %w", err)
	}
	for _, de := range blobs {
		info, err := de.Info()
		if err != nil || keep[digest.NewDigestFromEncoded(digest.SHA256, de.Name())] || !info.ModTime().Before(unusedSince) {
			continue
		}
		if err := os.Remove(filepath.Join(blobDir, de.Name())); err == nil {
			freed += info.Size()
		}
	}
	return freed, nil
}

// storeBlob writes body to the blob store (temporary file, then rename)
// and returns its digest and size.
func (c *Cache) storeBlob(body io.Reader) (digest.Digest, int64, error) {
	f, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "body-")
	if err != nil {
		return "", 0, fmt.Errorf("http cache: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), body)
	if err != nil {
		return "", 0, errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("read body: %w", err))
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("http cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", 0, fmt.Errorf("http cache: %w", err)
	}
	d := digest.NewDigest(digest.SHA256, h)
	if err := os.Rename(f.Name(), c.blobPath(d)); err != nil {
		return "", 0, fmt.Errorf("http cache: %w", err)
	}
	return d, n, nil
}

func (c *Cache) blobPath(d digest.Digest) string {
	return filepath.Join(c.dir, "blobs", "sha256", d.Encoded())
}

func (c *Cache) hasBlob(d digest.Digest) bool {
	if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
		return false
	}
	_, err := os.Stat(c.blobPath(d))
	return err == nil
}

// readEntry returns the record at p, or nil if there is none or it is
// unreadable (a record is only a hint: without it the body is downloaded
// again).
func (c *Cache) readEntry(p string) *entry {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var e entry
	if json.Unmarshal(b, &e) != nil || e.Digest.Validate() != nil {
		return nil
	}
	return &e
}

func (c *Cache) writeEntry(p string, e *entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "meta-")
	if err != nil {
		return fmt.Errorf("http cache: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(b)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("http cache: %w", werr)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("http cache: %w", err)
	}
	return nil
}

// urlKey names the record of a URL without putting the URL (which may hold
// credentials) in a file name.
func urlKey(rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	return hex.EncodeToString(sum[:])
}

// dispositionName is the file name a Content-Disposition header suggests,
// reduced to a safe single path element, or "".
func dispositionName(h string) string {
	if h == "" {
		return ""
	}
	_, params, err := mime.ParseMediaType(h)
	if err != nil {
		return ""
	}
	return safeName(params["filename"])
}

// redact removes the password from a URL for messages and records.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Redacted()
}

// requestError turns a failed request into a classed error without
// repeating the URL (the caller names it).
func requestError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return errdefs.WithClass(errdefs.ErrUnavailable, err)
}

// statusError is the error for a response that is neither 2xx nor 304.
func statusError(resp *http.Response) error {
	status := resp.Status
	if status == "" {
		status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	err := errors.New(status)
	switch code := resp.StatusCode; {
	case code == http.StatusNotFound || code == http.StatusGone:
		return errdefs.WithClass(errdefs.ErrNotFound, err)
	case code == http.StatusUnauthorized:
		return errdefs.WithClass(errdefs.ErrUnauthenticated, err)
	case code == http.StatusForbidden:
		return errdefs.WithClass(errdefs.ErrPermissionDenied, err)
	case code == http.StatusTooManyRequests || code >= 500:
		return errdefs.WithClass(errdefs.ErrUnavailable, err)
	default:
		return errdefs.WithClass(errdefs.ErrFailedPrecondition, err)
	}
}
