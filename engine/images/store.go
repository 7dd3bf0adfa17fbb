package images

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/layer"
)

// A stored image is read through go-containerregistry views of the
// content store, so its writers (remote push) do the I/O. Layers are the
// content store's layers (layer.ContentLayer); the manifests
// are read as they are.

// loadedManifest is one platform's manifest and config, read from the
// content store.
type loadedManifest struct {
	desc     ocispec.Descriptor
	raw      []byte
	manifest ocispec.Manifest
	config   []byte
	image    ocispec.Image
}

// platform returns the image's platform from its config (the index entry's
// when the config names none).
func (m *loadedManifest) platform() string {
	if m.image.OS != "" {
		return platforms.Format(platforms.Normalize(m.image.Platform))
	}
	if m.desc.Platform != nil {
		return platforms.Format(platforms.Normalize(*m.desc.Platform))
	}
	return "unknown"
}

// loadManifest reads the manifest desc names and its config. A missing
// blob is an errdefs.ErrNotFound error.
func loadManifest(ctx context.Context, cs content.Store, desc ocispec.Descriptor) (*loadedManifest, error) {
	raw, err := content.ReadBlob(ctx, cs, desc)
	if err != nil {
		return nil, err
	}
	m := &loadedManifest{desc: desc, raw: raw}
	if err := json.Unmarshal(raw, &m.manifest); err != nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("manifest %s: %w", desc.Digest, err))
	}
	if m.config, err = content.ReadBlob(ctx, cs, m.manifest.Config); err != nil {
		return nil, fmt.Errorf("config of manifest %s: %w", desc.Digest, err)
	}
	if err := json.Unmarshal(m.config, &m.image); err != nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("config %s: %w", m.manifest.Config.Digest, err))
	}
	return m, nil
}

// storedIndex is an index and the platforms' manifests the store has.
type storedIndex struct {
	desc      ocispec.Descriptor
	raw       []byte
	index     ocispec.Index
	manifests []*loadedManifest // in index order, only those present
	missing   []string          // platforms of the entries the store lacks
}

// loadIndex reads an index and each child manifest the store has.
func loadIndex(ctx context.Context, cs content.Store, desc ocispec.Descriptor) (*storedIndex, error) {
	raw, err := content.ReadBlob(ctx, cs, desc)
	if err != nil {
		return nil, err
	}
	x := &storedIndex{desc: desc, raw: raw}
	if err := json.Unmarshal(raw, &x.index); err != nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("index %s: %w", desc.Digest, err))
	}
	for _, d := range x.index.Manifests {
		if !types.MediaType(d.MediaType).IsImage() {
			// Nested indexes and attestations are not followed.
			continue
		}
		m, err := loadManifest(ctx, cs, d)
		if errdefs.IsNotFound(err) {
			p := "unknown"
			if d.Platform != nil {
				p = platforms.Format(platforms.Normalize(*d.Platform))
			}
			x.missing = append(x.missing, p)
			continue
		}
		if err != nil {
			return nil, err
		}
		m.desc = d
		x.manifests = append(x.manifests, m)
	}
	return x, nil
}

// storeImageCore is partial.CompressedImageCore over a loaded manifest.
type storeImageCore struct {
	ctx context.Context
	cs  content.Store
	m   *loadedManifest
}

var _ partial.CompressedImageCore = (*storeImageCore)(nil)

func (c *storeImageCore) RawConfigFile() ([]byte, error) { return c.m.config, nil }
func (c *storeImageCore) RawManifest() ([]byte, error)   { return c.m.raw, nil }
func (c *storeImageCore) MediaType() (types.MediaType, error) {
	if c.m.desc.MediaType != "" {
		return types.MediaType(c.m.desc.MediaType), nil
	}
	return types.MediaType(c.m.manifest.MediaType), nil
}

func (c *storeImageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h.String() == c.m.manifest.Config.Digest.String() {
		return layer.ContentLayer(c.ctx, c.cs, c.m.manifest.Config, ""), nil
	}
	for i, l := range c.m.manifest.Layers {
		if l.Digest.String() == h.String() {
			var diffID digest.Digest
			if i < len(c.m.image.RootFS.DiffIDs) {
				diffID = c.m.image.RootFS.DiffIDs[i]
			}
			return layer.ContentLayer(c.ctx, c.cs, l, diffID), nil
		}
	}
	return nil, errdefs.NotFoundf("image has no blob %s", h)
}

// storeImage returns m as a go-containerregistry image.
func storeImage(ctx context.Context, cs content.Store, m *loadedManifest) (v1.Image, error) {
	return partial.CompressedToImage(&storeImageCore{ctx: ctx, cs: cs, m: m})
}

// storeIndex is a go-containerregistry index over a stored index whose
// every image manifest is present.
type storeIndex struct {
	x      *storedIndex
	images map[v1.Hash]v1.Image
}

var _ v1.ImageIndex = (*storeIndex)(nil)

func newStoreIndex(ctx context.Context, cs content.Store, x *storedIndex) (*storeIndex, error) {
	idx := &storeIndex{x: x, images: map[v1.Hash]v1.Image{}}
	for _, m := range x.manifests {
		img, err := storeImage(ctx, cs, m)
		if err != nil {
			return nil, err
		}
		h, err := v1.NewHash(m.desc.Digest.String())
		if err != nil {
			return nil, err
		}
		idx.images[h] = img
	}
	return idx, nil
}

func (x *storeIndex) MediaType() (types.MediaType, error) {
	return types.MediaType(x.x.desc.MediaType), nil
}
func (x *storeIndex) Digest() (v1.Hash, error)     { return v1.NewHash(x.x.desc.Digest.String()) }
func (x *storeIndex) Size() (int64, error)         { return int64(len(x.x.raw)), nil }
func (x *storeIndex) RawManifest() ([]byte, error) { return x.x.raw, nil }
func (x *storeIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(x.x.raw))
}

func (x *storeIndex) Image(h v1.Hash) (v1.Image, error) {
	if img, ok := x.images[h]; ok {
		return img, nil
	}
	return nil, errdefs.NotFoundf("index has no image %s in the store", h)
}

func (x *storeIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, errdefs.WithClass(errdefs.ErrUnimplemented, fmt.Errorf("nested index %s: not supported", h))
}
