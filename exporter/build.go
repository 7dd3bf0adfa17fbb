package exporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kiln-build/kiln/layer"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
)

// builder builds the images of a result: layer blobs, configs, manifests
// and, for several platforms, an index, all stored in the content store.
type builder struct {
	layers  *layer.Maker
	format  ImageFormat
	epoch   *time.Time // SOURCE_DATE_EPOCH
	created time.Time  // the config's created time
	inline  InlineCache
}

func newBuilder(deps Deps, format ImageFormat, r Result) *builder {
	b := &builder{layers: deps.Layers, format: format, epoch: deps.SourceDateEpoch, created: r.created(), inline: r.Inline}
	if b.epoch != nil {
		e := b.epoch.UTC()
		b.epoch, b.created = &e, e
	}
	return b
}

// builtImage is one platform's image.
type builtImage struct {
	platform     ocispec.Platform
	manifest     ocispec.Descriptor // with the platform set
	manifestJSON []byte
	config       ocispec.Descriptor
	configJSON   []byte
	layers       []layer.Blob // Desc carries the manifest's media type
}

// built is the result of builder.build.
type built struct {
	images    []builtImage
	indexJSON []byte             // nil for one platform
	target    ocispec.Descriptor // the manifest, or the index
}

// blobSink receives each blob of an image once it is in the content store,
// once per digest, one call at a time: the tarball exporters write it out
// while later layers are still being made. Blobs come in a fixed order
// (each image's layers bottom first, its config and manifest, then the
// next image, then the index), so one result always gives the same
// tarball: a blob is handed over as soon as it and every blob before it
// are ready.
type blobSink func(ctx context.Context, desc ocispec.Descriptor) error

// serialSink makes a sink safe to call from several goroutines and drops
// repeated digests.
func serialSink(sink blobSink) blobSink {
	if sink == nil {
		return func(context.Context, ocispec.Descriptor) error { return nil }
	}
	var mu sync.Mutex
	seen := map[digest.Digest]bool{}
	return func(ctx context.Context, desc ocispec.Descriptor) error {
		mu.Lock()
		defer mu.Unlock()
		if seen[desc.Digest] {
			return nil
		}
		seen[desc.Digest] = true
		return sink(ctx, desc)
	}
}

// build builds every image of r, making layers in parallel, and hands each
// blob to sink as it is ready.
func (b *builder) build(ctx context.Context, r Result, sink blobSink) (*built, error) {
	if err := checkResult(r); err != nil {
		return nil, err
	}
	if b.layers == nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, errors.New("export: no layer store (Deps.Layers)"))
	}
	sink = serialSink(sink)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	out := &built{images: make([]builtImage, len(r.Images))}
	errs := make([]error, len(r.Images))
	// Images are built at once; turns[i] is closed when image i may hand
	// its blobs to sink.
	turns := make([]chan struct{}, len(r.Images)+1)
	for i := range turns {
		turns[i] = make(chan struct{})
	}
	close(turns[0])
	var wg sync.WaitGroup
	for i, img := range r.Images {
		wg.Go(func() {
			out.images[i], errs[i] = b.buildImage(ctx, img, sink, turns[i])
			if errs[i] != nil {
				cancel(errs[i])
			}
			close(turns[i+1])
		})
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		return nil, err
	}
	if len(out.images) == 1 {
		out.target = out.images[0].manifest
		out.target.Platform = nil
		out.target.Annotations = annotationsFor(b.format.Annotations, AnnotateManifestDescriptor, &out.images[0].platform)
		return out, nil
	}
	idx := ocispec.Index{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   indexMediaType(b.format.OCIMediaTypes),
		Annotations: annotationsFor(b.format.Annotations, AnnotateIndex, nil),
	}
	for _, img := range out.images {
		d := img.manifest
		d.Annotations = annotationsFor(b.format.Annotations, AnnotateManifestDescriptor, &img.platform)
		idx.Manifests = append(idx.Manifests, d)
	}
	desc, raw, err := b.putJSON(ctx, idx.MediaType, idx, sink)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	out.indexJSON = raw
	out.target = desc
	out.target.Annotations = annotationsFor(b.format.Annotations, AnnotateIndexDescriptor, nil)
	return out, nil
}

// firstError returns the first error that is not a cancellation caused by
// another, or else the first error.
func firstError(errs []error) error {
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if !errors.Is(err, context.Canceled) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// buildImage builds one image, handing its blobs to sink once turn is
// closed.
func (b *builder) buildImage(ctx context.Context, img Image, sink blobSink, turn <-chan struct{}) (builtImage, error) {
	p := img.Platform
	out := builtImage{platform: p}
	layers, err := b.makeLayers(ctx, img, sink, turn)
	if err != nil {
		return out, fmt.Errorf("export %s: %w", platformString(p), err)
	}
	out.layers = layers

	cfg := img.Config
	cfg.Platform = ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures}
	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: make([]digest.Digest, len(layers))}
	for i, l := range layers {
		cfg.RootFS.DiffIDs[i] = l.DiffID
	}
	created := b.created
	cfg.Created = &created
	cfg.History = alignHistory(cfg.History, len(layers), b.created, b.epoch)
	// The Docker form of the config carries Healthcheck, OnBuild and Shell
	// next to the OCI fields.
	full := imageconfig.Docker(cfg, img.ConfigExt)
	raw, err := json.Marshal(full)
	if err != nil {
		return out, fmt.Errorf("export %s: config: %w", platformString(p), err)
	}
	if b.inline != nil {
		snapshot := ""
		if img.Ref != nil {
			snapshot = img.Ref.ID()
		}
		cache, err := b.inline.CacheConfig(ctx, snapshot, layers)
		if err != nil {
			return out, fmt.Errorf("export %s: inline cache: %w", platformString(p), err)
		}
		raw = withField(raw, imageconfig.InlineCacheKey, cache)
	}
	out.config, out.configJSON, err = b.putRaw(ctx, configMediaType(b.format.OCIMediaTypes), raw, sink)
	if err != nil {
		return out, fmt.Errorf("export %s: config: %w", platformString(p), err)
	}

	m := ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   manifestMediaType(b.format.OCIMediaTypes),
		Config:      out.config,
		Layers:      make([]ocispec.Descriptor, len(layers)),
		Annotations: annotationsFor(b.format.Annotations, AnnotateManifest, &p),
	}
	for i, l := range layers {
		m.Layers[i] = l.Desc
	}
	out.manifest, out.manifestJSON, err = b.putJSON(ctx, m.MediaType, m, sink)
	if err != nil {
		return out, fmt.Errorf("export %s: manifest: %w", platformString(p), err)
	}
	mp := cfg.Platform
	out.manifest.Platform = &mp
	return out, nil
}

// makeLayers makes the blobs of img's layers in parallel and returns them
// bottom first with the media types of the format. Once turn is closed,
// it hands each to sink, in order, as soon as it is ready.
func (b *builder) makeLayers(ctx context.Context, img Image, sink blobSink, turn <-chan struct{}) ([]layer.Blob, error) {
	if img.Ref == nil {
		return nil, waitTurn(ctx, turn)
	}
	name := img.Ref.ID()
	if name == "" {
		return nil, errdefs.Invalidf("the result is not a snapshot (a %T), so it has no layers", img.Ref)
	}
	chain, err := b.layers.Chain(ctx, name)
	if err != nil {
		return nil, err
	}
	opts := layer.BlobOptions{Compression: b.format.Compression}
	if !b.format.NoRewriteTimestamp {
		opts.SourceDateEpoch = b.epoch
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	blobs := make([]layer.Blob, len(chain))
	errs := make([]error, len(chain))
	done := make([]chan struct{}, len(chain))
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, n := range chain {
		done[i] = make(chan struct{})
		wg.Go(func() {
			defer close(done[i])
			lb, err := b.layers.Blob(ctx, n, opts)
			lb.Desc = ocispec.Descriptor{MediaType: layer.MediaType(lb.Compression, b.format.OCIMediaTypes), Digest: lb.Desc.Digest, Size: lb.Desc.Size}
			blobs[i], errs[i] = lb, err
			if err != nil {
				cancel(err)
			}
		})
	}
	if err := waitTurn(ctx, turn); err != nil {
		wg.Wait()
		return nil, firstError(append(errs, err))
	}
	for i := range chain {
		<-done[i]
		if errs[i] != nil {
			wg.Wait()
			return nil, firstError(errs)
		}
		if err := sink(ctx, blobs[i].Desc); err != nil {
			cancel(err)
			return nil, err
		}
	}
	return blobs, nil
}

// waitTurn waits for turn to be closed.
func waitTurn(ctx context.Context, turn <-chan struct{}) error {
	select {
	case <-turn:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// putJSON stores v as a JSON blob of media type mt and hands it to sink.
func (b *builder) putJSON(ctx context.Context, mt string, v any, sink blobSink) (ocispec.Descriptor, []byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return b.putRaw(ctx, mt, raw, sink)
}

// withField adds "key": value to the JSON object obj (after its other
// fields, which keep their order); a nil value adds nothing.
func withField(obj []byte, key string, value json.RawMessage) []byte {
	if len(value) == 0 || len(obj) < 2 || obj[len(obj)-1] != '}' {
		return obj
	}
	k, _ := json.Marshal(key)
	out := append([]byte{}, obj[:len(obj)-1]...)
	if len(obj) > 2 {
		out = append(out, ',')
	}
	out = append(append(append(out, k...), ':'), value...)
	return append(out, '}')
}

// putRaw stores raw as a blob of media type mt and hands it to sink.
func (b *builder) putRaw(ctx context.Context, mt string, raw []byte, sink blobSink) (ocispec.Descriptor, []byte, error) {
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := content.WriteBlob(ctx, b.layers.Content(), "", bytes.NewReader(raw), desc); err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if err := sink(ctx, desc); err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return desc, raw, nil
}

// historyComment marks the history entries the exporter adds for layers
// the frontend's history did not account for.
const historyComment = "kiln.exporter.image"

// alignHistory returns history with exactly layers entries that are not
// empty-layer entries, in order, so that the n-th of them describes the
// n-th layer:
//
//   - entries without a time get created; with an epoch, later times are
//     clamped to it;
//   - if the entries claim more layers than there are, the last claims are
//     turned into empty-layer entries;
//   - if they claim fewer, entries are added at the bottom (the usual
//     cause is a base image without history).
func alignHistory(history []ocispec.History, layers int, created time.Time, epoch *time.Time) []ocispec.History {
	out := make([]ocispec.History, 0, len(history)+layers)
	claimed := 0
	for _, h := range history {
		if !h.EmptyLayer {
			claimed++
		}
	}
	for i := claimed; i < layers; i++ {
		t := created
		out = append(out, ocispec.History{Created: &t, CreatedBy: fmt.Sprintf("layer %d", i-claimed+1), Comment: historyComment})
	}
	keep := min(claimed, layers)
	seen := 0
	for _, h := range history {
		if !h.EmptyLayer {
			seen++
			if seen > keep {
				h.EmptyLayer = true
			}
		}
		switch {
		case h.Created == nil:
			t := created
			h.Created = &t
		case epoch != nil && h.Created.After(*epoch):
			t := *epoch
			h.Created = &t
		}
		out = append(out, h)
	}
	return out
}
