package http

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
)

// defaultMode is the mode of a downloaded file when the source sets none,
// as Docker's ADD.
const defaultMode = 0o600

// defaultName is the file name when neither the source, the response nor
// the URL's path gives one (as BuildKit).
const defaultName = "index"

// Op is the ops.Op of a graph.HTTPSource. Its result is a snapshot holding
// exactly one file, /<name>, with the body of the URL.
//
// The name is the source's Filename if set, else the file name of the
// response's Content-Disposition header, else the last segment of the
// URL's path (of the URL as written, not after redirects), else "index".
// With a Checksum and no Filename, Content-Disposition is not consulted,
// so that the key (computed without a request) determines the name. The
// file's mode is Mode (default 0600), its owner UID:GID, its mtime the
// Last-Modified time of the response (the Unix epoch without one).
type Op struct {
	src      graph.HTTPSource
	opDigest digest.Digest
	snaps    ops.Snapshots
	cache    *Cache

	mu       sync.Mutex
	resolved *Resource // set by CacheMap when the key needed the body
}

var _ ops.Op = (*Op)(nil)

// NewOp returns the op for src, whose definition digest is opDigest. It
// checks src: an http or https URL, a file name that is one path element,
// a mode of permission bits (at most 07777), ids that are not negative
// and a well-formed checksum.
func NewOp(src *graph.HTTPSource, opDigest digest.Digest, snaps ops.Snapshots, cache *Cache) (*Op, error) {
	if src == nil {
		return nil, errdefs.Invalidf("http source: no source")
	}
	if snaps == nil || cache == nil {
		return nil, errdefs.Invalidf("ADD %s: http source: no snapshots or cache", redact(src.URL))
	}
	u, err := url.Parse(src.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errdefs.Invalidf("ADD %s: not an http or https URL", redact(src.URL))
	}
	if src.Filename != "" && safeName(src.Filename) != src.Filename {
		return nil, errdefs.Invalidf("ADD %s: invalid file name %q: must be a single path element", redact(src.URL), src.Filename)
	}
	if src.Mode > 0o7777 {
		return nil, errdefs.Invalidf("ADD %s: invalid mode %#o: only permission bits (at most 07777) are allowed", redact(src.URL), src.Mode)
	}
	if src.UID < 0 || src.GID < 0 {
		return nil, errdefs.Invalidf("ADD %s: invalid owner %d:%d", redact(src.URL), src.UID, src.GID)
	}
	if src.Checksum != "" {
		if err := src.Checksum.Validate(); err != nil {
			return nil, errdefs.Invalidf("ADD %s: invalid checksum %q: %v", redact(src.URL), src.Checksum, err)
		}
	}
	return &Op{src: *src, opDigest: opDigest, snaps: snaps, cache: cache}, nil
}

// CacheMap implements ops.Op. With a Checksum the key is made of the
// checksum and needs no request. Without one, CacheMap downloads the body
// (or revalidates the cached one with a conditional GET) and the key covers
// its content digest, the file name, mode, owner and mtime.
func (o *Op) CacheMap(ctx context.Context) (*ops.CacheMap, error) {
	if o.src.Checksum != "" {
		return &ops.CacheMap{Digest: o.key(o.src.Checksum, o.name(""), time.Time{})}, nil
	}
	res, err := o.cache.Fetch(ctx, o.src.URL)
	if err != nil {
		return nil, o.errorf("%w", err)
	}
	o.mu.Lock()
	o.resolved = &res
	o.mu.Unlock()
	return &ops.CacheMap{Digest: o.key(res.Digest, o.name(res.Filename), res.ModTime)}, nil
}

// Exec implements ops.Op. It takes no inputs. With a Checksum the body is
// verified against it; without one it must be the body CacheMap saw.
func (o *Op) Exec(ctx context.Context, inputs []ops.Ref) (ops.Ref, error) {
	if len(inputs) != 0 {
		return nil, errdefs.Invalidf("ADD %s: http source takes no inputs, got %d", redact(o.src.URL), len(inputs))
	}
	res, body, err := o.body(ctx)
	if err != nil {
		return nil, err
	}
	defer body.Close()

	name := o.name(res.Filename)
	if o.src.Checksum != "" {
		name = o.name("") // as in the key
		if err := o.verify(body); err != nil {
			return nil, err
		}
	}

	a, err := o.snaps.New(ctx, nil, "ADD "+redact(o.src.URL))
	if err != nil {
		return nil, err
	}
	defer a.Discard(context.WithoutCancel(ctx))
	err = withDir(ctx, a, func(dir string) error {
		return o.writeFile(dir, name, body, res.ModTime)
	})
	if err != nil {
		return nil, o.errorf("write %s: %w", name, err)
	}
	return a.Commit(ctx)
}

// body returns the resource and its open body: the one CacheMap resolved
// (downloaded again if the cache lost it meanwhile) or, with a Checksum,
// the current one.
func (o *Op) body(ctx context.Context) (Resource, *os.File, error) {
	o.mu.Lock()
	want := o.resolved
	o.mu.Unlock()
	if want != nil {
		if f, err := o.cache.Open(want.Digest); err == nil {
			return *want, f, nil
		}
	}
	res, err := o.cache.Fetch(ctx, o.src.URL)
	if err != nil {
		return Resource{}, nil, o.errorf("%w", err)
	}
	if want != nil && res.Digest != want.Digest {
		return Resource{}, nil, errdefs.WithClass(errdefs.ErrFailedPrecondition,
			o.errorf("content changed during the build: was %s, now %s", want.Digest, res.Digest))
	}
	f, err := o.cache.Open(res.Digest)
	if err != nil {
		return Resource{}, nil, o.errorf("%w", err)
	}
	return res, f, nil
}

// verify checks the body against the source's checksum and rewinds it.
func (o *Op) verify(f *os.File) error {
	alg := o.src.Checksum.Algorithm()
	if !alg.Available() {
		return errdefs.Invalidf("ADD %s: unsupported checksum algorithm %q", redact(o.src.URL), alg)
	}
	d, err := alg.FromReader(f)
	if err != nil {
		return o.errorf("read body: %w", err)
	}
	if d != o.src.Checksum {
		return errdefs.WithClass(errdefs.ErrFailedPrecondition,
			o.errorf("checksum mismatch: expected %s, got %s", o.src.Checksum, d))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return o.errorf("read body: %w", err)
	}
	return nil
}

// writeFile creates dir/name from body with the source's owner and mode
// and mtime modTime (the epoch if zero). os.Root keeps the write inside dir.
func (o *Op) writeFile(dir, name string, body io.Reader, modTime time.Time) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, body)
	if err == nil && (o.src.UID != 0 || o.src.GID != 0 || os.Geteuid() == 0) {
		err = f.Chown(o.src.UID, o.src.GID)
	}
	if err == nil {
		// After Chown, which clears set-id bits.
		err = f.Chmod(fileMode(o.mode()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if modTime.IsZero() {
		modTime = time.Unix(0, 0)
	}
	return root.Chtimes(name, modTime, modTime)
}

// key is the cache key digest: the op's definition plus what the result is
// made of (content, name, mode, owner, mtime).
func (o *Op) key(content digest.Digest, name string, modTime time.Time) digest.Digest {
	h := sha256.New()
	mt := ""
	if !modTime.IsZero() {
		mt = strconv.FormatInt(modTime.UnixNano(), 10)
	}
	for _, s := range []string{"kiln/http/v1", o.opDigest.String(), content.String(), name,
		strconv.FormatUint(uint64(o.mode()), 8), strconv.Itoa(o.src.UID), strconv.Itoa(o.src.GID), mt} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return digest.NewDigest(digest.SHA256, h)
}

func (o *Op) mode() uint32 {
	if o.src.Mode == 0 {
		return defaultMode
	}
	return o.src.Mode
}

// name is the result's file name given the Content-Disposition name of the
// response ("" for none).
func (o *Op) name(disposition string) string {
	if o.src.Filename != "" {
		return o.src.Filename
	}
	if disposition != "" {
		return disposition
	}
	if u, err := url.Parse(o.src.URL); err == nil {
		if n := safeName(path.Clean("/" + u.Path)); n != "" {
			return n
		}
	}
	return defaultName
}

func (o *Op) errorf(format string, args ...any) error {
	return fmt.Errorf("ADD %s: "+format, append([]any{redact(o.src.URL)}, args...)...)
}

// safeName returns the last element of p if it is a usable file name (not
// empty, ".", ".." or holding a NUL) and p does not end in a slash, else "".
func safeName(p string) string {
	if strings.ContainsRune(p, 0) || strings.HasSuffix(p, "/") {
		return ""
	}
	n := path.Base(p)
	if n == "." || n == ".." || n == "/" || n == "" {
		return ""
	}
	return n
}

// fileMode converts Unix permission bits (with set-id and sticky bits) to
// an os.FileMode.
func fileMode(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// withDir calls fn with a directory that writes into a: its upper
// directory when it has one (writing there directly is allowed for an
// empty snapshot), else a temporary mount of it.
func withDir(ctx context.Context, a ops.Active, fn func(dir string) error) error {
	if up := a.UpperDir(); up != "" {
		return fn(up)
	}
	if len(a.Mounts()) == 0 {
		return errors.New("snapshot has no mounts")
	}
	return mount.WithTempMount(ctx, a.Mounts(), fn)
}
