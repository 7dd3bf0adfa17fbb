package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
)

// ContentStores is implemented by sessions whose client exposes its cache
// directory as an OCI content store, named "local:" + the directory, as
// BuildKit's clients (buildctl, buildx) do. The daemon then reads and
// writes the directory's blobs through the store; the client keeps its
// index.json itself: it resolves the tag to a manifest digest before an
// import, and names the manifest an export reports (ManifestKey in the
// build's response) after it.
type ContentStores interface {
	ContentStore(ctx context.Context, id string) (content.Store, error)
}

// ManifestKey is the exporter response key of a local cache export's
// manifest descriptor (JSON), as BuildKit's clients read it.
const ManifestKey = "cache.manifest"

func storeID(dir string) string { return "local:" + dir }

// storeSource reads a cache manifest, by digest, from the client's store.
type storeSource struct {
	cs     content.Store
	label  string
	digest digest.Digest
}

func (s *storeSource) Load(ctx context.Context) ([]remote.Record, remote.BlobStore, error) {
	if s.digest == "" {
		return nil, nil, errdefs.Invalidf("%s: the client named no cache manifest digest", s.label)
	}
	blobs := newStoreBlobs(s.cs, s.label)
	raw, err := blobs.read(ctx, ocispec.Descriptor{Digest: s.digest})
	if err != nil {
		return nil, nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, errdefs.Invalidf("%s: manifest %s: %v", s.label, s.digest, err)
	}
	if m.Config.MediaType != remote.ConfigMediaType {
		return nil, nil, errdefs.Invalidf("%s: %s is not a Kiln build cache (config media type %q)", s.label, s.digest, m.Config.MediaType)
	}
	cfg, err := blobs.read(ctx, m.Config)
	if err != nil {
		return nil, nil, err
	}
	recs, _, err := remote.DecodeConfig(cfg)
	return recs, blobs, err
}

// storeBlobs is a remote.BlobStore over the client's content store: the
// daemon's own (remote.LocalBlobs) with misses in the not-found class.
type storeBlobs struct {
	remote.BlobStore
	cs    content.Store
	label string
}

func newStoreBlobs(cs content.Store, label string) storeBlobs {
	return storeBlobs{BlobStore: remote.LocalBlobs(cs, ""), cs: cs, label: label}
}

func (b storeBlobs) Stat(ctx context.Context, dgst digest.Digest) (int64, error) {
	n, err := b.BlobStore.Stat(ctx, dgst)
	if err != nil {
		return 0, b.classify(dgst, err)
	}
	return n, nil
}

func (b storeBlobs) Open(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := b.BlobStore.Open(ctx, desc)
	if err != nil {
		return nil, b.classify(desc.Digest, err)
	}
	return rc, nil
}

// read reads a small blob (a manifest or config), checking its digest.
func (b storeBlobs) read(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, errdefs.Invalidf("%s: blob digest %q: %v", b.label, desc.Digest, err)
	}
	// One request for the reader, whose size the client tells: the cap
	// holds whatever size the descriptor claimed.
	ra, err := b.cs.ReaderAt(ctx, desc)
	if err != nil {
		return nil, b.classify(desc.Digest, err)
	}
	defer ra.Close()
	size := ra.Size()
	if size > 16<<20 || (desc.Size > 0 && size != desc.Size) {
		return nil, errdefs.Invalidf("%s: blob %s is too large or not its descriptor's size (%d bytes)", b.label, desc.Digest, size)
	}
	data := make([]byte, size)
	// ReadAt may end a full read at the end of the blob with io.EOF.
	if n, err := ra.ReadAt(data, 0); int64(n) < size || (err != nil && !errors.Is(err, io.EOF)) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, b.classify(desc.Digest, err)
	}
	if digest.FromBytes(data) != desc.Digest {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("%s: blob %s does not match its digest", b.label, desc.Digest))
	}
	return data, nil
}

func (b storeBlobs) classify(dgst digest.Digest, err error) error {
	if cerrdefs.IsNotFound(err) {
		return errdefs.NotFoundf("%s has no blob %s", b.label, dgst)
	}
	return fmt.Errorf("%s: blob %s: %w", b.label, dgst, err)
}

// storeTarget writes a cache to the client's store. The client names the
// manifest in its index.json from the build's response, so the target
// holds no records of its own before an export (an export replaces what
// the tag named, as BuildKit's local cache does).
type storeTarget struct {
	blobs storeBlobs
	tag   string
	oci   bool

	mu       sync.Mutex
	manifest *ocispec.Descriptor
}

var _ remote.Target = (*storeTarget)(nil)

func (t *storeTarget) Blobs() remote.BlobStore { return t.blobs }

func (t *storeTarget) Records(context.Context) ([]remote.Record, error) { return nil, nil }

func (t *storeTarget) Save(ctx context.Context, records []remote.Record) error {
	cfgDesc, cfg, mDesc, raw, err := cacheManifest(records, t.oci)
	if err != nil {
		return err
	}
	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{cfgDesc, cfg}, {mDesc, raw}} {
		if err := t.blobs.Put(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
			return err
		}
	}
	t.mu.Lock()
	t.manifest = &mDesc
	t.mu.Unlock()
	return nil
}

// ExporterResponse names the manifest for the client's index.json.
func (t *storeTarget) ExporterResponse() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.manifest == nil {
		return nil
	}
	b, err := json.Marshal(t.manifest)
	if err != nil {
		return nil
	}
	return map[string]string{ManifestKey: string(b)}
}
