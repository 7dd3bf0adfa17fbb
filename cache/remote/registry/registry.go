package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/registry"
)

// Name is how progress names hits from a registry cache: CACHED (registry).
const Name = "registry"

// recheck is how long an export waits before checking that its records
// survived concurrent writers.
const recheck = 500 * time.Millisecond

// ImportFactory makes the cache of a --cache-from type=registry value
// (Backend parses it).
func ImportFactory(_ context.Context, d remote.Deps, s remote.ImportSpec) (cache.RemoteCache, error) {
	if d.Resolver == nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("registry cache: no resolver"))
	}
	ref, err := registry.ParseReference(s.Ref)
	if err != nil {
		return nil, fmt.Errorf("--cache-from type=registry: %w", err)
	}
	return remote.NewManifestCache(Name, &Cache{r: d.Resolver, ref: ref, platform: d.Platform}, d.Importer), nil
}

// ExportFactory makes the exporter of a --cache-to type=registry value.
func ExportFactory(_ context.Context, d remote.Deps, s remote.ExportSpec) (cache.Exporter, error) {
	if d.Resolver == nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("registry cache: no resolver"))
	}
	ref, err := registry.ParseReference(s.Ref)
	if err != nil {
		return nil, fmt.Errorf("--cache-to type=registry: %w", err)
	}
	if _, ok := ref.(name.Digest); ok {
		return nil, errdefs.Invalidf("--cache-to type=registry,ref=%s: a cache is written to a tag, not a digest", s.Ref)
	}
	c := &Cache{r: d.Resolver, ref: ref, platform: d.Platform, oci: s.OCIMediaTypes}
	return remote.NewManifestExporter(remote.ManifestExporterOptions{
		Name: "registry " + registry.NormalizedName(ref), Target: c, Spec: s,
		Layers: d.Layers, Local: d.Local, Writer: d.Writer, Recheck: recheck,
	}), nil
}

// Cache is a cache manifest (or an image with inline cache) at a
// reference. It is a remote.Source and a remote.Target.
type Cache struct {
	r        *registry.Resolver
	ref      name.Reference
	platform ocispec.Platform
	oci      bool
}

var (
	_ remote.Source = (*Cache)(nil)
	_ remote.Target = (*Cache)(nil)
)

// NewCache returns the cache at ref.
func NewCache(r *registry.Resolver, ref name.Reference, platform ocispec.Platform, ociMediaTypes bool) *Cache {
	return &Cache{r: r, ref: ref, platform: platform, oci: ociMediaTypes}
}

// Blobs implements remote.Target: the reference's repository.
func (c *Cache) Blobs() remote.BlobStore { return &Blobs{r: c.r, repo: c.ref.Context()} }

// Load implements remote.Source.
func (c *Cache) Load(ctx context.Context) ([]remote.Record, remote.BlobStore, error) {
	recs, err := c.records(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	return recs, c.Blobs(), nil
}

// Records implements remote.Target: the records of the cache manifest at
// the reference, none if there is none. A reference that names an image
// is refused, so that a cache export never replaces an image.
func (c *Cache) Records(ctx context.Context) ([]remote.Record, error) {
	recs, err := c.records(ctx, false)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	return recs, err
}

// records reads the manifest at the reference: a cache manifest's
// records, or, when images is true, an image's inline cache.
func (c *Cache) records(ctx context.Context, images bool) ([]remote.Record, error) {
	desc, err := c.r.Get(ctx, c.ref)
	if err != nil {
		return nil, err
	}
	if desc.MediaType.IsIndex() {
		if !images {
			return nil, errdefs.Invalidf("%s is an image index, not a build cache: refusing to replace it", registry.NormalizedName(c.ref))
		}
		img, err := c.r.Image(ctx, c.ref, v1.Platform{OS: c.platform.OS, Architecture: c.platform.Architecture, Variant: c.platform.Variant})
		if err != nil {
			return nil, err
		}
		raw, err := img.RawManifest()
		if err != nil {
			return nil, registry.WrapError("pull", c.ref, err)
		}
		return c.fromManifest(ctx, raw, images)
	}
	return c.fromManifest(ctx, desc.Manifest, images)
}

func (c *Cache) fromManifest(ctx context.Context, raw []byte, images bool) ([]remote.Record, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errdefs.Invalidf("%s: bad manifest: %v", registry.NormalizedName(c.ref), err)
	}
	cfg, err := c.blob(ctx, m.Config)
	if err != nil {
		return nil, err
	}
	if m.Config.MediaType == remote.ConfigMediaType {
		recs, bad, err := remote.DecodeConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", registry.NormalizedName(c.ref), err)
		}
		_ = bad // invalid records are skipped; the others are usable
		return recs, nil
	}
	if !images {
		return nil, errdefs.Invalidf("%s is an image, not a build cache: refusing to replace it (use another tag for the cache)", registry.NormalizedName(c.ref))
	}
	var img struct {
		RootFS ocispec.RootFS  `json:"rootfs"`
		Inline json.RawMessage `json:"kiln.cache.v1"`
	}
	if err := json.Unmarshal(cfg, &img); err != nil {
		return nil, errdefs.Invalidf("%s: bad image config: %v", registry.NormalizedName(c.ref), err)
	}
	if len(img.Inline) == 0 {
		return nil, errdefs.NotFoundf("%s is an image without inline cache (build it with --cache-to type=inline)", registry.NormalizedName(c.ref))
	}
	return remote.DecodeInline(img.Inline, m.Layers, img.RootFS.DiffIDs)
}

// blob reads a small blob (a config) of the reference's repository,
// checking its digest.
func (c *Cache) blob(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > 16<<20 {
		return nil, errdefs.Invalidf("%s: config blob of %d bytes is too large", registry.NormalizedName(c.ref), desc.Size)
	}
	rc, err := c.Blobs().Open(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, desc.Size+1)); err != nil {
		return nil, registry.WrapError("pull", c.ref, err)
	}
	if int64(buf.Len()) != desc.Size || digest.FromBytes(buf.Bytes()) != desc.Digest {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("%s: config blob %s does not match its digest", registry.NormalizedName(c.ref), desc.Digest))
	}
	return buf.Bytes(), nil
}

// Save implements remote.Target: it uploads the config blob and pushes
// the manifest to the reference.
func (c *Cache) Save(ctx context.Context, records []remote.Record) error {
	cfg, err := remote.EncodeConfig(records)
	if err != nil {
		return err
	}
	cfgDesc := ocispec.Descriptor{MediaType: remote.ConfigMediaType, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	if err := c.Blobs().Put(ctx, cfgDesc, bytes.NewReader(cfg)); err != nil {
		return err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    []ocispec.Descriptor{},
	}
	if c.oci {
		m.ArtifactType = remote.ArtifactType
	} else {
		m.MediaType = string(types.DockerManifestSchema2)
	}
	for _, l := range layerSet(records) {
		d := l.Descriptor()
		if !c.oci {
			d.MediaType = dockerMediaType(d.MediaType)
		}
		m.Layers = append(m.Layers, d)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ref, opts, err := c.r.PushOptions(ctx, c.ref)
	if err != nil {
		return err
	}
	if err := ggcrremote.Put(ref, rawManifest{b: raw, mt: types.MediaType(m.MediaType)}, opts...); err != nil {
		return registry.WrapError("push", c.ref, err)
	}
	return nil
}

// layerSet returns the distinct blobs of records, in first-seen order.
func layerSet(records []remote.Record) []remote.Layer {
	seen := map[digest.Digest]bool{}
	var out []remote.Layer
	for _, r := range records {
		for _, l := range r.Layers {
			if !seen[l.Digest] {
				seen[l.Digest] = true
				out = append(out, l)
			}
		}
	}
	return out
}

func dockerMediaType(mt string) string {
	switch mt {
	case ocispec.MediaTypeImageLayerGzip:
		return string(types.DockerLayer)
	case ocispec.MediaTypeImageLayer:
		return string(types.DockerUncompressedLayer)
	}
	return mt
}

// rawManifest is a manifest to push as it is.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }
