package remote

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/internal/flight"
	"github.com/kiln-build/kiln/internal/iox"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/labels"
	"github.com/kiln-build/kiln/snapshot"
)

// sharedBlobLabel records on a snapshot the blob of its layer in a shared
// blob store ("<media type>|<digest>|<size>"). Such a blob is made for the
// shared cache only, in the store's compression, straight into the store:
// it is not in the daemon's content store and layer.Maker does not
// know it, so images keep the compression they are exported with.
const sharedBlobLabel = "kiln.io/layer.shared-blob"

// Compressions of the blobs a shared cache makes.
const (
	CompressionZstd         = "zstd" // the default: fast, and it skips incompressible data
	CompressionGzip         = "gzip"
	CompressionUncompressed = "uncompressed"
)

// BlobIngester is implemented by blob stores that can take a blob whose
// digest is not known yet: write writes it, the store hashes it on the way
// and files it under its digest.
type BlobIngester interface {
	Ingest(ctx context.Context, mediaType string, write func(w io.Writer) error) (ocispec.Descriptor, error)
}

// Ingest implements BlobIngester.
func (s *FileStore) Ingest(ctx context.Context, mediaType string, write func(w io.Writer) error) (desc ocispec.Descriptor, err error) {
	dir := filepath.Join(s.dir, "blobs", string(digest.SHA256))
	f, err := os.CreateTemp(dir, tempPrefix+randomHex()+"-")
	if err != nil {
		return desc, fmt.Errorf("write blob to %s: %w", s.dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	dw := iox.NewDigestWriter(newWritebackFile(f))
	if err := write(iox.ContextWriter(ctx, dw)); err != nil {
		return desc, err
	}
	if err := f.Chmod(0o444); err != nil {
		return desc, err
	}
	if err := f.Close(); err != nil {
		return desc, fmt.Errorf("write blob to %s: %w", s.dir, err)
	}
	desc = ocispec.Descriptor{MediaType: mediaType, Digest: dw.Digest(), Size: dw.Size()}
	p, _ := s.path(desc.Digest)
	if err := os.Rename(tmp, p); err != nil {
		return desc, fmt.Errorf("write blob %s to %s: %w", desc.Digest, s.dir, err)
	}
	return desc, nil
}

// PutFrom implements BlobCopier: a blob of the daemon's content store on
// the same file system is hard-linked, not copied (blobs never change).
func (s *FileStore) PutFrom(ctx context.Context, desc ocispec.Descriptor, src BlobStore) error {
	p, err := s.path(desc.Digest)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(p); err == nil && fi.Size() == desc.Size {
		return nil
	}
	if cb, ok := src.(contentBlobs); ok && cb.dir != "" {
		from := filepath.Join(cb.dir, "blobs", string(desc.Digest.Algorithm()), desc.Digest.Encoded())
		if fi, err := os.Stat(from); err == nil && fi.Mode().IsRegular() && fi.Size() == desc.Size {
			tmp := filepath.Join(filepath.Dir(p), tempPrefix+randomHex())
			if err := os.Link(from, tmp); err == nil {
				if err := os.Rename(tmp, p); err == nil {
					return nil
				}
				_ = os.Remove(tmp)
			}
		}
	}
	rc, err := src.Open(ctx, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	return s.Put(ctx, desc, rc)
}

// Ingest implements BlobIngester: into the first store that can, then
// copied to the others.
func (m multiStore) Ingest(ctx context.Context, mediaType string, write func(w io.Writer) error) (ocispec.Descriptor, error) {
	for i, s := range m {
		in, ok := s.(BlobIngester)
		if !ok {
			continue
		}
		desc, err := in.Ingest(ctx, mediaType, write)
		if err != nil {
			return desc, err
		}
		for j, o := range m {
			if j != i {
				if err := copyBlob(ctx, desc, s, o); err != nil {
					return desc, err
				}
			}
		}
		return desc, nil
	}
	return ocispec.Descriptor{}, errdefs.WithClass(errdefs.ErrUnimplemented, fmt.Errorf("no blob store takes blobs of unknown digest"))
}

// sharedLayer returns the blob of the layer the committed snapshot name
// adds, in the shared store. In order it uses: a blob of the daemon's
// content store that the snapshot is labelled with (a pulled base layer, a
// layer an image export made), copied or linked into the store; a blob
// the store has that the snapshot's shared-blob label names; or the
// snapshot's diff, compressed in the shared cache's compression and
// written straight into the store.
func (s *Shared) sharedLayer(ctx context.Context, name string) (Layer, error) {
	sn := s.layers.Snapshotter()
	info, err := sn.Stat(ctx, name)
	if err != nil {
		return Layer{}, fmt.Errorf("layer %s: %w", name, err)
	}
	if l, ok := s.labelledLayer(ctx, info); ok {
		return l, nil
	}
	ing, ok := s.blobs.(BlobIngester)
	if !ok {
		// A store that needs the digest first (a registry): make the
		// blob in the content store as an image export would.
		ls, err := resultLayersOf(ctx, s.layers, []string{name}, s.imageComp())
		if err != nil {
			return Layer{}, err
		}
		return ls[0], copyBlobs(ctx, ls, s.local, s.blobs)
	}
	l, err := s.diffs.Do(ctx, name, func(ctx context.Context, _ *flight.Call) (Layer, error) {
		if info, err := sn.Stat(ctx, name); err == nil {
			if l, ok := s.labelledLayer(ctx, info); ok {
				return l, nil
			}
		}
		mt, compress := compressorFor(s.blobComp)
		var diffID digest.Digest
		desc, err := ing.Ingest(ctx, mt, func(w io.Writer) error {
			zw, err := compress(w)
			if err != nil {
				return err
			}
			diffID, _, err = snapshot.Diff(ctx, sn, name, zw)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
			return err
		})
		if err != nil {
			return Layer{}, fmt.Errorf("layer %s: %w", name, err)
		}
		l := Layer{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, DiffID: diffID}
		return l, labelShared(ctx, sn, name, l)
	})
	if err != nil {
		return Layer{}, err
	}
	return l, nil
}

// labelledLayer returns the layer of a snapshot whose labels name a blob
// the daemon or the shared store has, copying a local blob into the store.
func (s *Shared) labelledLayer(ctx context.Context, info snapshots.Info) (Layer, bool) {
	diffID, err := digest.Parse(info.Labels[labels.DiffID])
	if err != nil {
		return Layer{}, false
	}
	for _, comp := range []string{CompressionGzip, CompressionZstd, CompressionUncompressed} {
		desc, ok := parseDescLabel(info.Labels[labels.Blob(comp)])
		if !ok {
			continue
		}
		if exists, err := content.Exists(ctx, s.layers.Content(), desc.Digest); err != nil || !exists {
			continue
		}
		l := Layer{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, DiffID: diffID}
		if copyBlob(ctx, desc, s.local, s.blobs) == nil {
			return l, true
		}
	}
	if desc, ok := parseDescLabel(info.Labels[sharedBlobLabel]); ok {
		if size, err := s.blobs.Stat(ctx, desc.Digest); err == nil && size == desc.Size {
			return Layer{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, DiffID: diffID}, true
		}
	}
	return Layer{}, false
}

// labelShared records a layer's diffID and shared blob on its snapshot.
func labelShared(ctx context.Context, sn snapshots.Snapshotter, name string, l Layer) error {
	info := snapshots.Info{Name: name, Labels: map[string]string{
		labels.DiffID:   l.DiffID.String(),
		sharedBlobLabel: descLabel(l.Descriptor()),
	}}
	if _, err := sn.Update(ctx, info, "labels."+labels.DiffID, "labels."+sharedBlobLabel); err != nil {
		return fmt.Errorf("label snapshot %s: %w", name, err)
	}
	return nil
}

func descLabel(d ocispec.Descriptor) string {
	return fmt.Sprintf("%s|%s|%d", d.MediaType, d.Digest, d.Size)
}

// parseDescLabel reads "<media type>|<digest>|<size>".
func parseDescLabel(v string) (ocispec.Descriptor, bool) {
	parts := strings.Split(v, "|")
	if len(parts) != 3 {
		return ocispec.Descriptor{}, false
	}
	d, err := digest.Parse(parts[1])
	if err != nil {
		return ocispec.Descriptor{}, false
	}
	size, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || size < 0 {
		return ocispec.Descriptor{}, false
	}
	return ocispec.Descriptor{MediaType: parts[0], Digest: d, Size: size}, true
}

// compressorFor returns the media type and compressor of a shared blob
// compression. (exporter's compressors are not exported, and the shared
// cache wants zstd at its fastest level, which images do not.) zstd runs
// on one thread: the blobs are made behind running builds, which need the
// other cores more, and at its fastest level one thread keeps up with
// the diff and the disk (make bench, shared case).
func compressorFor(comp string) (string, func(io.Writer) (io.WriteCloser, error)) {
	switch comp {
	case CompressionGzip:
		return ocispec.MediaTypeImageLayerGzip, func(w io.Writer) (io.WriteCloser, error) {
			zw := pgzip.NewWriter(w)
			if err := zw.SetConcurrency(1<<20, max(2, runtime.GOMAXPROCS(0))); err != nil {
				return nil, err
			}
			return zw, nil
		}
	case CompressionUncompressed:
		return ocispec.MediaTypeImageLayer, func(w io.Writer) (io.WriteCloser, error) { return nopCloser{w}, nil }
	}
	return ocispec.MediaTypeImageLayerZstd, func(w io.Writer) (io.WriteCloser, error) {
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
