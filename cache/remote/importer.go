package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/kiln-build/kiln/internal/iox"

	ctrcontent "github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/flight"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/labels"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/snapshot"
)

// Importer imports remote records into the daemon: it copies the layer
// blobs the daemon lacks into its content store (each checked against its
// digest) and unpacks them in order onto the snapshotter, naming each
// snapshot by its chain ID as the image puller does and labelling it with
// its diffID and blob, so that exporting the layer again reuses the blob.
// One Importer serves the daemon; it is safe for concurrent use.
type Importer struct {
	cs   content.Store
	sn   snapshots.Snapshotter
	load func(ctx context.Context, name string) (ops.Ref, error)

	fetches flight.Group[struct{}]
	unpacks flight.Group[struct{}]
	jobs    int
}

// NewImporter returns an importer into cs and sn; load returns a handle on
// a committed snapshot (worker.Snapshots.Load).
func NewImporter(cs content.Store, sn snapshots.Snapshotter, load func(ctx context.Context, name string) (ops.Ref, error)) *Importer {
	return &Importer{cs: cs, sn: sn, load: load, jobs: 3}
}

// Hit is a record found in a remote cache, with the store its blobs are
// in. Loading it imports it. Exporters recognise it (by type assertion)
// and copy its blobs without importing it.
type Hit struct {
	Record Record
	Blobs  BlobStore
	im     *Importer
}

var _ cache.Hit = (*Hit)(nil)

// NewHit returns the hit of rec, whose blobs are in blobs.
func (im *Importer) NewHit(rec Record, blobs BlobStore) *Hit {
	return &Hit{Record: rec, Blobs: blobs, im: im}
}

// Load implements cache.Hit.
func (h *Hit) Load(ctx context.Context) (ops.Ref, error) {
	return h.im.Import(ctx, h.Record, h.Blobs)
}

// Import makes rec's result available and returns a handle on it. Layers
// whose snapshot exists are neither fetched nor unpacked; the others are
// fetched a few at a time and unpacked in order as their blobs arrive.
func (im *Importer) Import(ctx context.Context, rec Record, src BlobStore) (ops.Ref, error) {
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	chain := rec.ChainIDs()
	start := 0
	for i := len(chain) - 1; i >= 0; i-- {
		if im.exists(ctx, chain[i].String()) {
			start = i + 1
			break
		}
	}
	if start < len(chain) {
		if err := im.importLayers(ctx, rec, chain, start, src); err != nil {
			return nil, err
		}
	}
	return im.load(ctx, chain[len(chain)-1].String())
}

func (im *Importer) exists(ctx context.Context, name string) bool {
	info, err := im.sn.Stat(ctx, name)
	return err == nil && info.Kind == snapshots.KindCommitted
}

func (im *Importer) importLayers(ctx context.Context, rec Record, chain []digest.Digest, start int, src BlobStore) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	n := len(rec.Layers)
	done := make([]chan error, n)
	sem := make(chan struct{}, im.jobs)
	for i := start; i < n; i++ {
		done[i] = make(chan error, 1)
		if streamed(rec.Layers[i]) {
			done[i] <- nil // read while it is unpacked
			continue
		}
		go func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				done[i] <- im.fetch(ctx, rec.Layers[i], src)
			case <-ctx.Done():
				done[i] <- context.Cause(ctx)
			}
		}()
	}
	parent := ""
	if start > 0 {
		parent = chain[start-1].String()
	}
	for i := start; i < n; i++ {
		err := <-done[i]
		if err == nil && streamed(rec.Layers[i]) {
			err = im.unpackStream(ctx, parent, rec.Layers[i], chain[i].String(), src)
		} else if err == nil {
			err = im.unpack(ctx, parent, rec.Layers[i], chain[i].String())
		}
		if err != nil {
			cancel(err)
			for j := i + 1; j < n; j++ {
				<-done[j]
			}
			return fmt.Errorf("import cache record %s: layer %d/%d (%s): %w", shortDigest(rec.Key), i+1, n, rec.Layers[i].Digest, err)
		}
		parent = chain[i].String()
	}
	return nil
}

// fetch copies the layer's blob from src into the content store, once
// however many imports ask. A blob whose bytes do not match its digest is
// corrupt: it is removed from src when src can, and the import fails.
func (im *Importer) fetch(ctx context.Context, l Layer, src BlobStore) error {
	if ok, err := content.Exists(ctx, im.cs, l.Digest); err != nil || ok {
		return err
	}
	_, err := im.fetches.Do(ctx, l.Digest.String(), func(ctx context.Context, _ *flight.Call) (struct{}, error) {
		rc, err := src.Open(ctx, l.Descriptor())
		if err != nil {
			return struct{}{}, err
		}
		defer rc.Close()
		err = content.WriteBlob(ctx, im.cs, "", rc, l.Descriptor())
		if err != nil && errors.Is(err, errdefs.ErrFailedPrecondition) {
			if rm, ok := src.(BlobRemover); ok {
				_ = rm.Remove(context.WithoutCancel(ctx), l.Digest)
			}
			return struct{}{}, fmt.Errorf("the cache's blob is corrupt: %w", err)
		}
		return struct{}{}, err
	})
	return err
}

// unpack unpacks the layer (its blob is in the content store) on parent as
// the snapshot name, and labels it.
func (im *Importer) unpack(ctx context.Context, parent string, l Layer, name string) error {
	_, err := im.unpacks.Do(ctx, name, func(ctx context.Context, _ *flight.Call) (struct{}, error) {
		if im.exists(ctx, name) {
			return struct{}{}, nil
		}
		ra, err := im.cs.ReaderAt(ctx, l.Descriptor())
		if err != nil {
			return struct{}{}, fmt.Errorf("read blob: %w", err)
		}
		defer ra.Close()
		tr, err := compression.DecompressStream(ctrcontent.NewReader(ra))
		if err != nil {
			return struct{}{}, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("decompress layer: %w", err))
		}
		defer tr.Close()
		got, err := snapshot.Unpack(ctx, im.sn, parent, tr, snapshot.WithDiffID(l.DiffID))
		if err != nil {
			return struct{}{}, err
		}
		if got != name {
			return struct{}{}, errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("unpacked as %s, want chain ID %s", got, name))
		}
		return struct{}{}, im.label(ctx, name, l)
	})
	return err
}

// streamed reports whether a layer is imported straight from its blob
// store, without a copy in the content store: the blobs a shared cache
// makes (zstd, uncompressed). gzip blobs, the images' default, are copied
// into the content store so that an image export reuses them as they are.
func streamed(l Layer) bool { return compressionOf(l.MediaType) != CompressionGzip }

// unpackStream unpacks the layer read straight from src on parent as the
// snapshot name. The tar is checked against the layer's diffID before the
// snapshot is committed; the blob's digest is checked as it is read, and a
// blob that does not match is removed from src (the snapshot is still
// right: its tar matched). The snapshot is labelled with its diffID and,
// when the blob matched, with the shared blob.
func (im *Importer) unpackStream(ctx context.Context, parent string, l Layer, name string, src BlobStore) error {
	_, err := im.unpacks.Do(ctx, name, func(ctx context.Context, _ *flight.Call) (struct{}, error) {
		if im.exists(ctx, name) {
			return struct{}{}, nil
		}
		rc, err := src.Open(ctx, l.Descriptor())
		if err != nil {
			return struct{}{}, err
		}
		defer rc.Close()
		cd := iox.NewDigestWriterFor(io.Discard, l.Digest.Algorithm())
		body := io.TeeReader(io.LimitReader(rc, l.Size+1), cd)
		tr, err := compression.DecompressStream(body)
		if err != nil {
			im.dropCorrupt(ctx, src, l)
			return struct{}{}, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("the cache's blob is corrupt: decompress: %w", err))
		}
		defer tr.Close()
		got, err := snapshot.Unpack(ctx, im.sn, parent, tr, snapshot.WithDiffID(l.DiffID))
		if err != nil {
			if ctx.Err() != nil {
				return struct{}{}, err
			}
			// Whatever broke the unpack, a blob that does not match
			// its digest is the cause.
			_, _ = io.Copy(io.Discard, body)
			if cd.Size() != l.Size || cd.Digest() != l.Digest || errors.Is(err, errdefs.ErrFailedPrecondition) {
				im.dropCorrupt(ctx, src, l)
				return struct{}{}, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("the cache's blob is corrupt: %w", err))
			}
			return struct{}{}, err
		}
		if got != name {
			return struct{}{}, errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("unpacked as %s, want chain ID %s", got, name))
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return struct{}{}, err
		}
		set := map[string]string{labels.DiffID: l.DiffID.String()}
		if cd.Size() == l.Size && cd.Digest() == l.Digest {
			set[sharedBlobLabel] = descLabel(l.Descriptor())
		} else {
			im.dropCorrupt(ctx, src, l)
		}
		return struct{}{}, im.setLabels(ctx, name, set)
	})
	return err
}

// dropCorrupt removes a blob found corrupt from its store, when it can.
func (im *Importer) dropCorrupt(ctx context.Context, src BlobStore, l Layer) {
	if rm, ok := src.(BlobRemover); ok {
		_ = rm.Remove(context.WithoutCancel(ctx), l.Digest)
	}
}

// label records the layer's diffID and blob on its snapshot, as the image
// puller does for base layers.
func (im *Importer) label(ctx context.Context, name string, l Layer) error {
	set := map[string]string{labels.DiffID: l.DiffID.String()}
	if comp := compressionOf(l.MediaType); comp != "" {
		set[labels.Blob(comp)] = descLabel(l.Descriptor())
	}
	return im.setLabels(ctx, name, set)
}

func (im *Importer) setLabels(ctx context.Context, name string, set map[string]string) error {
	info := snapshots.Info{Name: name, Labels: set}
	paths := make([]string, 0, len(set))
	for k := range set {
		paths = append(paths, "labels."+k)
	}
	sort.Strings(paths)
	if _, err := im.sn.Update(ctx, info, paths...); err != nil {
		return fmt.Errorf("label snapshot %s: %w", name, err)
	}
	return nil
}

// compressionOf names a layer media type's compression as core/labels
// does ("gzip", "zstd", "uncompressed"), "" for one it does not know.
func compressionOf(mt string) string {
	switch mt {
	case ocispec.MediaTypeImageLayerGzip, "application/vnd.docker.image.rootfs.diff.tar.gzip":
		return "gzip"
	case ocispec.MediaTypeImageLayerZstd:
		return "zstd"
	case ocispec.MediaTypeImageLayer, "application/vnd.docker.image.rootfs.diff.tar":
		return "uncompressed"
	}
	return ""
}

// usable returns the newest of records whose blobs src has (with the
// sizes the record says); check=false trusts the records. It returns an
// error in the not-found class when none is usable.
func usable(ctx context.Context, records []Record, src BlobStore, check bool) (Record, error) {
	sort.SliceStable(records, func(i, j int) bool { return records[i].Created.After(records[j].Created) })
	var errs []error
next:
	for _, r := range records {
		if err := r.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if check {
			for _, l := range r.Layers {
				size, err := src.Stat(ctx, l.Digest)
				if err == nil && size != l.Size {
					err = errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("blob %s has %d bytes, the record says %d", l.Digest, size, l.Size))
				}
				if err != nil {
					if !errdefs.IsNotFound(err) && !errors.Is(err, errdefs.ErrFailedPrecondition) {
						return Record{}, err
					}
					errs = append(errs, err)
					continue next
				}
			}
		}
		return r, nil
	}
	if len(errs) == 0 {
		return Record{}, cache.ErrNotFound
	}
	return Record{}, errdefs.WithClass(errdefs.ErrNotFound, fmt.Errorf("no usable record: %w", errors.Join(errs...)))
}
