package local

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/session"
)

// Name is how progress names hits from a local cache: CACHED (local
// cache) — "local" alone is the daemon's own store.
const Name = "local cache"

// Sync names under which the client offers its directories.
func importName(i int) string { return fmt.Sprintf("cache-from:%d", i) }
func exportName(i int) string { return fmt.Sprintf("cache-to:%d", i) }

// ImportFactory is the remote.ImportFactory of type=local.
// (Backend parses the value.)
func ImportFactory(ctx context.Context, d remote.Deps, s remote.ImportSpec) (cache.RemoteCache, error) {
	if d.Session == nil {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("--cache-from type=local: the build has no client session"))
	}
	if cs, ok := d.Session.(ContentStores); ok {
		store, err := cs.ContentStore(ctx, storeID(s.Src))
		if err != nil {
			return nil, fmt.Errorf("--cache-from type=local,src=%s: %w", s.Src, err)
		}
		return remote.NewManifestCache(Name, &storeSource{cs: store, label: s.Src, digest: s.Digest}, d.Importer), nil
	}
	l := &layout{sess: d.Session, name: importName(d.Index), tmp: d.TempDir, label: s.Src}
	return remote.NewManifestCache(Name, &source{l: l, tag: s.Tag, digest: s.Digest}, d.Importer), nil
}

// ExportFactory is the remote.ExportFactory of type=local.
func ExportFactory(ctx context.Context, d remote.Deps, s remote.ExportSpec) (cache.Exporter, error) {
	if cs, ok := d.Session.(ContentStores); ok && d.Output == nil {
		store, err := cs.ContentStore(ctx, storeID(s.Dest))
		if err != nil {
			return nil, fmt.Errorf("--cache-to type=local,dest=%s: %w", s.Dest, err)
		}
		t := &storeTarget{blobs: newStoreBlobs(store, s.Dest), tag: s.Tag, oci: s.OCIMediaTypes}
		return remote.NewManifestExporter(remote.ManifestExporterOptions{
			Name: "local " + s.Dest, Target: t, Spec: s, Layers: d.Layers, Local: d.Local, Writer: d.Writer,
		}), nil
	}
	if d.Session == nil || d.Output == nil {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("--cache-to type=local: the client does not receive the cache (a kiln client writes dest itself)"))
	}
	l := &layout{sess: d.Session, name: exportName(d.Index), tmp: d.TempDir, label: s.Dest}
	t := &target{l: l, tag: s.Tag, oci: s.OCIMediaTypes, open: d.Output, sent: map[digest.Digest]int64{}}
	return remote.NewManifestExporter(remote.ManifestExporterOptions{
		Name: "local " + s.Dest, Target: t, Spec: s, Layers: d.Layers, Local: d.Local, Writer: d.Writer,
	}), nil
}

// layout reads files of the client's layout directory through the session.
type layout struct {
	sess  session.Session
	name  string // sync name
	tmp   string // daemon directory for the copies
	label string // the client's path, for messages
}

// fetch copies one file of the layout (slash-separated rel) into a new
// temporary directory and returns its path there and the cleanup. A
// missing file is in the not-found class.
func (l *layout) fetch(ctx context.Context, rel string) (string, func(), error) {
	if l.tmp != "" {
		if err := os.MkdirAll(l.tmp, 0o700); err != nil {
			return "", nil, err
		}
	}
	dir, err := os.MkdirTemp(l.tmp, "local-cache-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	if _, err := l.sess.SyncDir(ctx, l.name, session.SyncOptions{IncludePatterns: []string{rel}}, dir); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("read %s from the client's %s: %w", rel, l.label, err)
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		cleanup()
		return "", nil, errdefs.NotFoundf("%s has no %s", l.label, rel)
	}
	if err != nil || !fi.Mode().IsRegular() {
		cleanup()
		return "", nil, errdefs.Invalidf("%s: %s is not a regular file", l.label, rel)
	}
	return p, cleanup, nil
}

// small reads a small file of the layout.
func (l *layout) small(ctx context.Context, rel string) ([]byte, error) {
	p, cleanup, err := l.fetch(ctx, rel)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 16<<20+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 16<<20 {
		return nil, errdefs.Invalidf("%s: %s is too large", l.label, rel)
	}
	return b, nil
}

// blob reads a small blob, checking its digest.
func (l *layout) blob(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, errdefs.Invalidf("%s: blob digest %q: %v", l.label, desc.Digest, err)
	}
	b, err := l.small(ctx, blobPath(desc.Digest))
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(b) != desc.Digest {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("%s: blob %s does not match its digest", l.label, desc.Digest))
	}
	return b, nil
}

func blobPath(d digest.Digest) string { return path.Join("blobs", string(d.Algorithm()), d.Encoded()) }

// index reads index.json; a directory without one has an empty index.
func (l *layout) index(ctx context.Context) (ocispec.Index, error) {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	b, err := l.small(ctx, ocispec.ImageIndexFile)
	if errdefs.IsNotFound(err) {
		return idx, nil
	}
	if err != nil {
		return idx, err
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, errdefs.Invalidf("%s/index.json: %v", l.label, err)
	}
	return idx, nil
}

// records reads the cache manifest named by tag (or dgst) and its records.
// A layout without it is in the not-found class.
func (l *layout) records(ctx context.Context, idx ocispec.Index, tag string, dgst digest.Digest) ([]remote.Record, error) {
	var desc *ocispec.Descriptor
	for i, m := range idx.Manifests {
		if (dgst != "" && m.Digest == dgst) || (dgst == "" && m.Annotations[ocispec.AnnotationRefName] == tag) {
			desc = &idx.Manifests[i]
		}
	}
	if desc == nil {
		what := "tag " + tag
		if dgst != "" {
			what = "manifest " + dgst.String()
		}
		return nil, errdefs.NotFoundf("%s has no cache %s", l.label, what)
	}
	raw, err := l.blob(ctx, *desc)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errdefs.Invalidf("%s: manifest %s: %v", l.label, desc.Digest, err)
	}
	if m.Config.MediaType != remote.ConfigMediaType {
		return nil, errdefs.Invalidf("%s: %s is not a Kiln build cache (config media type %q)", l.label, desc.Digest, m.Config.MediaType)
	}
	cfg, err := l.blob(ctx, m.Config)
	if err != nil {
		return nil, err
	}
	recs, _, err := remote.DecodeConfig(cfg)
	return recs, err
}

// source is a remote.Source over the client's layout.
type source struct {
	l      *layout
	tag    string
	digest digest.Digest
}

func (s *source) Load(ctx context.Context) ([]remote.Record, remote.BlobStore, error) {
	idx, err := s.l.index(ctx)
	if err != nil {
		return nil, nil, err
	}
	recs, err := s.l.records(ctx, idx, s.tag, s.digest)
	if err != nil {
		return nil, nil, err
	}
	return recs, layoutBlobs{s.l}, nil
}

// layoutBlobs reads blobs of the client's layout, one sync each.
type layoutBlobs struct{ l *layout }

func (b layoutBlobs) Stat(ctx context.Context, dgst digest.Digest) (int64, error) {
	p, cleanup, err := b.l.fetch(ctx, blobPath(dgst))
	if err != nil {
		return 0, err
	}
	defer cleanup()
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (b layoutBlobs) Open(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	p, cleanup, err := b.l.fetch(ctx, blobPath(desc.Digest))
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		cleanup()
		return nil, err
	}
	return &cleanupFile{File: f, cleanup: cleanup}, nil
}

func (b layoutBlobs) Put(context.Context, ocispec.Descriptor, io.Reader) error {
	return errdefs.WithClass(errdefs.ErrUnimplemented, fmt.Errorf("%s: a --cache-from directory is read-only", b.l.label))
}

type cleanupFile struct {
	*os.File
	cleanup func()
}

func (f *cleanupFile) Close() error {
	err := f.File.Close()
	f.cleanup()
	return err
}

// target writes to the client's layout: blobs as they come, then the
// config, manifest and index.json, in one tar stream.
type target struct {
	l    *layout
	tag  string
	oci  bool
	open func() (io.WriteCloser, error)

	mu   sync.Mutex
	w    io.WriteCloser
	tw   *tar.Writer
	sent map[digest.Digest]int64
	err  error
	idx  *ocispec.Index // the index read by Records
}

var (
	_ remote.Target  = (*target)(nil)
	_ remote.Aborter = (*target)(nil)
)

func (t *target) Blobs() remote.BlobStore { return tarBlobs{t} }

func (t *target) Records(ctx context.Context) ([]remote.Record, error) {
	idx, err := t.l.index(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.idx = &idx
	t.mu.Unlock()
	recs, err := t.l.records(ctx, idx, t.tag, "")
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	return recs, err
}

func (t *target) Save(ctx context.Context, records []remote.Record) error {
	cfgDesc, cfg, mDesc, raw, err := cacheManifest(records, t.oci)
	if err != nil {
		return err
	}
	mDesc.Annotations = map[string]string{ocispec.AnnotationRefName: t.tag, ocispec.AnnotationCreated: time.Now().UTC().Format(time.RFC3339)}
	t.mu.Lock()
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	if t.idx != nil {
		idx = *t.idx
	}
	t.mu.Unlock()
	var keep []ocispec.Descriptor
	for _, d := range idx.Manifests {
		if d.Annotations[ocispec.AnnotationRefName] != t.tag {
			keep = append(keep, d)
		}
	}
	idx.Manifests = append(keep, mDesc)
	idxJSON, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{cfgDesc, cfg}, {mDesc, raw}} {
		if err := t.put(ctx, blobPath(b.desc.Digest), b.desc, bytes.NewReader(b.data)); err != nil {
			return err
		}
	}
	layoutFile := []byte(`{"imageLayoutVersion":"` + ocispec.ImageLayoutVersion + `"}`)
	if err := t.file(ocispec.ImageLayoutFile, layoutFile); err != nil {
		return err
	}
	// index.json last: the client replaces it once everything it names
	// is in place.
	if err := t.file(ocispec.ImageIndexFile, idxJSON); err != nil {
		return err
	}
	return t.close(nil)
}

// cacheManifest makes the cache config of records and the manifest naming
// it and the records' layers.
func cacheManifest(records []remote.Record, oci bool) (cfgDesc ocispec.Descriptor, cfg []byte, mDesc ocispec.Descriptor, raw []byte, err error) {
	if cfg, err = remote.EncodeConfig(records); err != nil {
		return cfgDesc, nil, mDesc, nil, err
	}
	cfgDesc = ocispec.Descriptor{MediaType: remote.ConfigMediaType, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: cfgDesc, Layers: []ocispec.Descriptor{},
	}
	if oci {
		m.ArtifactType = remote.ArtifactType
	}
	seen := map[digest.Digest]bool{}
	for _, r := range records {
		for _, l := range r.Layers {
			if !seen[l.Digest] {
				seen[l.Digest] = true
				m.Layers = append(m.Layers, l.Descriptor())
			}
		}
	}
	if raw, err = json.Marshal(m); err != nil {
		return cfgDesc, nil, mDesc, nil, err
	}
	mDesc = ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	return cfgDesc, cfg, mDesc, raw, nil
}

// Abort implements remote.Aborter: it ends the stream as a valid tar
// without index.json, so the client keeps its old cache.
func (t *target) Abort() { _ = t.close(errors.New("cache export aborted")) }

func (t *target) stream() (*tar.Writer, error) {
	if t.err != nil {
		return nil, t.err
	}
	if t.tw == nil {
		w, err := t.open()
		if err != nil {
			t.err = err
			return nil, err
		}
		t.w, t.tw = w, tar.NewWriter(w)
	}
	return t.tw, nil
}

func (t *target) header(name string, size int64) *tar.Header {
	return &tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
}

// put streams one blob into the tar, checked against desc.
func (t *target) put(ctx context.Context, name string, desc ocispec.Descriptor, r io.Reader) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.sent[desc.Digest]; ok {
		return nil
	}
	tw, err := t.stream()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(t.header(name, desc.Size)); err != nil {
		t.err = err
		return err
	}
	d := desc.Digest.Algorithm().Digester()
	n, err := io.Copy(io.MultiWriter(tw, d.Hash()), io.LimitReader(r, desc.Size))
	if err == nil && (n != desc.Size || d.Digest() != desc.Digest) {
		err = errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("blob %s: content does not match its digest", desc.Digest))
	}
	if err != nil {
		t.err = err // the tar is broken from here on
		return err
	}
	t.sent[desc.Digest] = desc.Size
	return nil
}

func (t *target) file(name string, data []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	tw, err := t.stream()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(t.header(name, int64(len(data)))); err != nil {
		return err
	}
	_, err = tw.Write(data)
	return err
}

// close ends the stream once: a complete tar after a successful Save, or
// after a failure, a stream closed with the error when the tar is broken.
func (t *target) close(failure error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return t.err
	}
	w, tw := t.w, t.tw
	t.w, t.tw = nil, nil
	if t.err == nil {
		t.err = errors.New("cache export stream closed")
		err := tw.Close()
		return errors.Join(err, w.Close())
	}
	if cw, ok := w.(interface{ CloseWithError(error) error }); ok {
		return cw.CloseWithError(errors.Join(failure, t.err))
	}
	return w.Close()
}

// tarBlobs is the target's blob store: a blob is "there" once sent.
type tarBlobs struct{ t *target }

func (b tarBlobs) Stat(_ context.Context, dgst digest.Digest) (int64, error) {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	if size, ok := b.t.sent[dgst]; ok {
		return size, nil
	}
	return 0, errdefs.NotFoundf("blob %s not sent yet", dgst)
}

func (b tarBlobs) Open(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
	return nil, errdefs.WithClass(errdefs.ErrUnimplemented, errors.New("the client's cache directory is write-only here"))
}

func (b tarBlobs) Put(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return b.t.put(ctx, blobPath(desc.Digest), desc, r)
}
