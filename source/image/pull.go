package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	ctrcontent "github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/labels"
	"github.com/kiln-build/kiln/internal/flight"
	"github.com/kiln-build/kiln/registry"
	"github.com/kiln-build/kiln/snapshot"
)

// Image is a pulled image: its manifest and config for one platform, its
// layer blobs in the content store and its filesystem unpacked.
type Image struct {
	// Ref is the reference pinned by the manifest digest.
	Ref string
	// Descriptor is the manifest's descriptor and Manifest the manifest.
	Descriptor ocispec.Descriptor
	Manifest   ocispec.Manifest
	// Config is the image config and ConfigJSON its bytes.
	Config     ocispec.Image
	ConfigJSON []byte
	// Layers are the layer descriptors, bottom first (Manifest.Layers).
	Layers []ocispec.Descriptor
	// ChainIDs name the committed snapshot of each layer (the filesystem
	// up to and including it), bottom first.
	ChainIDs []string
	// ChainID is the top snapshot, the image's filesystem; "" for an
	// image without layers (an empty filesystem).
	ChainID string
}

// Progress reports a pull's work on one layer.
type Progress struct {
	Layer          digest.Digest
	Status         string // StatusDownloading, StatusDownloaded, StatusExtracted
	Current, Total int64  // bytes, while downloading
}

// Progress statuses.
const (
	StatusDownloading = "downloading"
	StatusDownloaded  = "downloaded"
	StatusExtracted   = "extracted"
)

// PullOption configures one Pull.
type PullOption func(*pullOptions)

type pullOptions struct {
	progress func(Progress)
	interval time.Duration
}

// WithProgress has Pull call fn as layers download (about once a second
// per layer, and once when each is done) and unpack. fn may be called
// from several goroutines at once.
func WithProgress(fn func(Progress)) PullOption {
	return func(o *pullOptions) { o.progress = fn }
}

// Pull makes ref's image for platform available: it resolves ref like
// ResolveImageConfig, downloads the layer blobs the content store lacks
// (in parallel, each verified against its digest) and unpacks each layer
// the snapshotter lacks on its parent's snapshot, naming snapshots by chain
// ID. Layers unpack in order as soon as they are downloaded, while later
// ones still download. A layer whose chain-ID snapshot exists is neither
// downloaded nor unpacked. Concurrent pulls of one image or of images that
// share layers download and unpack each layer once.
//
// Every snapshot Pull unpacks is labelled with the layer's diffID
// (labels.DiffID), its blob (labels.Blob(compression)) and the repository
// it came from (labels.Source), so exporters reuse the blob as it is.
func (p *Puller) Pull(ctx context.Context, ref string, platform ocispec.Platform, opts ...PullOption) (*Image, error) {
	o := pullOptions{interval: time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	r, err := p.resolve(ctx, ref, platform)
	if err != nil {
		return nil, err
	}
	img := &Image{
		Ref: r.t.pinned(r.desc.Digest), Descriptor: r.desc, Manifest: r.manifest,
		Config: r.config, ConfigJSON: r.configJSON, Layers: r.manifest.Layers,
	}
	diffIDs := r.config.RootFS.DiffIDs
	if len(diffIDs) != len(img.Layers) {
		return nil, errdefs.Invalidf("pull %s: the manifest has %d layers but the config %d diff IDs", r.t, len(img.Layers), len(diffIDs))
	}
	comps := make([]string, len(img.Layers))
	for i, l := range img.Layers {
		if comps[i], err = layerCompression(l.MediaType); err != nil {
			return nil, fmt.Errorf("pull %s: layer %d (%s): %w", r.t, i+1, l.Digest, err)
		}
		if err := diffIDs[i].Validate(); err != nil {
			return nil, errdefs.Invalidf("pull %s: config diff ID %d: %v", r.t, i+1, err)
		}
	}
	chain := identity.ChainIDs(append([]digest.Digest(nil), diffIDs...))
	for _, c := range chain {
		img.ChainIDs = append(img.ChainIDs, c.String())
	}
	if len(chain) == 0 {
		return img, nil
	}
	if p.sn == nil {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("pull %s: the puller has no snapshotter to unpack into", r.t))
	}
	img.ChainID = img.ChainIDs[len(chain)-1]

	// Layers below the topmost existing snapshot are not needed.
	start := 0
	for i := len(chain) - 1; i >= 0; i-- {
		if p.snapshotExists(ctx, img.ChainIDs[i]) {
			start = i + 1
			break
		}
	}
	if start == len(chain) {
		return img, nil
	}
	if err := p.unpackLayers(ctx, r, img, comps, start, o); err != nil {
		return nil, err
	}
	return img, nil
}

func (p *Puller) snapshotExists(ctx context.Context, name string) bool {
	info, err := p.sn.Stat(ctx, name)
	return err == nil && info.Kind == snapshots.KindCommitted
}

// unpackLayers downloads layers[start:] with p.downloads workers and
// unpacks them in order as their downloads finish.
func (p *Puller) unpackLayers(ctx context.Context, r *resolved, img *Image, comps []string, start int, o pullOptions) error {
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	n := len(img.Layers)
	done := make([]chan error, n)
	for i := start; i < n; i++ {
		done[i] = make(chan error, 1)
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	next.Store(int64(start))
	for range min(p.downloads, n-start) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				done[i] <- p.blob(dctx, r.t, img.Layers[i], false, o.layerProgress(img.Layers[i]))
			}
		})
	}
	defer wg.Wait()

	parent := ""
	if start > 0 {
		parent = img.ChainIDs[start-1]
	}
	for i := start; i < n; i++ {
		var err error
		select {
		case err = <-done[i]:
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
		if err == nil {
			err = p.unpack(ctx, r, img, comps, i, parent)
		}
		if err != nil {
			cancel(err)
			return pullError(r.t, fmt.Sprintf("layer %d/%d (%s)", i+1, n, img.Layers[i].Digest), err)
		}
		if o.progress != nil {
			o.progress(Progress{Layer: img.Layers[i].Digest, Status: StatusExtracted, Total: img.Layers[i].Size})
		}
		parent = img.ChainIDs[i]
	}
	return nil
}

// layerProgress returns the download progress callback for layer l.
func (o pullOptions) layerProgress(l ocispec.Descriptor) *blobProgress {
	if o.progress == nil {
		return nil
	}
	return &blobProgress{fn: o.progress, desc: l, interval: o.interval}
}

type blobProgress struct {
	fn       func(Progress)
	desc     ocispec.Descriptor
	interval time.Duration
}

func (b *blobProgress) report(status string, current int64) {
	b.fn(Progress{Layer: b.desc.Digest, Status: status, Current: current, Total: b.desc.Size})
}

// blob makes sure the content store has the blob desc describes,
// downloading it from t's repository (once, however many pulls ask).
// localOnly fails instead of downloading.
func (p *Puller) blob(ctx context.Context, t target, desc ocispec.Descriptor, localOnly bool, bp *blobProgress) error {
	ok, err := content.Exists(ctx, p.cs, desc.Digest)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	if localOnly {
		return errdefs.NotFoundf("blob %s is not in the content store", desc.Digest)
	}
	fetch := func(ctx context.Context, f *flight.Call) error {
		if ok, err := content.Exists(ctx, p.cs, desc.Digest); err == nil && ok {
			return nil // another run finished it in between
		}
		l, err := p.reg.Layer(ctx, t.repo.Digest(desc.Digest.String()))
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err == nil {
			defer rc.Close()
			err = content.WriteBlob(ctx, p.cs, "", &countingReader{r: rc, c: f}, desc)
		}
		if err != nil && ctx.Err() == nil {
			// Name the registry and classify network failures.
			return registry.WrapError("pull", t.ref, err)
		}
		return err
	}
	var opts []flight.Option
	if bp != nil {
		bp.report(StatusDownloading, 0)
		opts = append(opts, flight.WithTick(bp.interval, func(done int64) { bp.report(StatusDownloading, done) }))
	}
	if err := once(ctx, &p.blobs, desc.Digest.String(), fetch, opts...); err != nil {
		return err
	}
	if bp != nil {
		bp.report(StatusDownloaded, desc.Size)
	}
	return nil
}

// pullError says which part of pulling t failed. Registry errors already
// name the reference; others get it in front.
func pullError(t target, what string, err error) error {
	var re *registry.Error
	if errors.As(err, &re) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("pull %s: %s: %w", t, what, err)
}

// countingReader counts the bytes read as c's work done.
type countingReader struct {
	r io.Reader
	c *flight.Call
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.c.Add(int64(n))
	return n, err
}

// once runs work for key, once for every caller asking meanwhile; a
// caller that joined another's run which failed tries once on its own
// (flight.WithRetryOnce).
func once(ctx context.Context, g *flight.Group[struct{}], key string, work func(context.Context, *flight.Call) error, opts ...flight.Option) error {
	_, err := g.Do(ctx, key, func(ctx context.Context, c *flight.Call) (struct{}, error) {
		return struct{}{}, work(ctx, c)
	}, append(opts, flight.WithRetryOnce())...)
	return err
}

// unpack unpacks layer i (its blob is in the content store) on parent and
// labels the snapshot, once however many pulls ask.
func (p *Puller) unpack(ctx context.Context, r *resolved, img *Image, comps []string, i int, parent string) error {
	name := img.ChainIDs[i]
	layer := img.Layers[i]
	diffID := r.config.RootFS.DiffIDs[i]
	work := func(ctx context.Context, _ *flight.Call) error {
		if p.snapshotExists(ctx, name) {
			return nil
		}
		ra, err := p.cs.ReaderAt(ctx, layer)
		if err != nil {
			return fmt.Errorf("read blob: %w", err)
		}
		defer ra.Close()
		tr, err := decompress(ctrcontent.NewReader(ra))
		if err != nil {
			return err
		}
		defer tr.Close()
		got, err := snapshot.Unpack(ctx, p.sn, parent, tr, snapshot.WithDiffID(diffID))
		if err != nil {
			return err
		}
		if got != name {
			return errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("unpacked as %s, want chain ID %s", got, name))
		}
		return p.label(ctx, name, r.t.repoName, layer, comps[i], diffID)
	}
	return once(ctx, &p.unpacks, name, work)
}

// label records the layer's diffID, blob and source on its snapshot.
func (p *Puller) label(ctx context.Context, name, source string, layer ocispec.Descriptor, comp string, diffID digest.Digest) error {
	blobKey := labels.Blob(comp)
	info := snapshots.Info{Name: name, Labels: map[string]string{
		labels.DiffID: diffID.String(),
		blobKey:       fmt.Sprintf("%s|%s|%d", layer.MediaType, layer.Digest, layer.Size),
		labels.Source: source,
	}}
	if _, err := p.sn.Update(ctx, info, "labels."+labels.DiffID, "labels."+blobKey, "labels."+labels.Source); err != nil {
		return fmt.Errorf("label snapshot %s: %w", name, err)
	}
	return nil
}
