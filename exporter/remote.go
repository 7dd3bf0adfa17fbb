package exporter

import (
	"bytes"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/core/errdefs"
)

// contentImage is a go-containerregistry image over a manifest, config and
// layers in the content store. Its layers may be wrapped (cross-repository
// mounts), which is why it does not go through partial: partial would wrap
// them again and hide the wrapper.
type contentImage struct {
	manifest    []byte
	mediaType   types.MediaType
	config      []byte
	layers      []v1.Layer
	parsed      *v1.Manifest
	configLayer v1.Layer
}

var _ v1.Image = (*contentImage)(nil)

func newContentImage(manifest []byte, mediaType string, config []byte, layers []v1.Layer) (*contentImage, error) {
	m, err := v1.ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	return &contentImage{
		manifest: manifest, mediaType: types.MediaType(mediaType), config: config, layers: layers, parsed: m,
		configLayer: static.NewLayer(config, m.Config.MediaType),
	}, nil
}

func (i *contentImage) Layers() ([]v1.Layer, error)         { return i.layers, nil }
func (i *contentImage) MediaType() (types.MediaType, error) { return i.mediaType, nil }
func (i *contentImage) Size() (int64, error)                { return int64(len(i.manifest)), nil }
func (i *contentImage) ConfigName() (v1.Hash, error)        { return i.parsed.Config.Digest, nil }
func (i *contentImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *contentImage) RawManifest() ([]byte, error)        { return i.manifest, nil }
func (i *contentImage) Manifest() (*v1.Manifest, error)     { return i.parsed.DeepCopy(), nil }
func (i *contentImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(i.config))
}
func (i *contentImage) Digest() (v1.Hash, error)            { return partial.Digest(i) }
func (i *contentImage) ConfigLayer() (v1.Layer, error)      { return i.configLayer, nil }
func (i *contentImage) Descriptor() (*v1.Descriptor, error) { return partial.Descriptor(i) }
func (i *contentImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for _, l := range i.layers {
		if d, err := l.DiffID(); err == nil && d == h {
			return l, nil
		}
	}
	return nil, errdefs.NotFoundf("image has no layer with diffID %s", h)
}

func (i *contentImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if h == i.parsed.Config.Digest {
		return i.configLayer, nil
	}
	for _, l := range i.layers {
		if d, err := l.Digest(); err == nil && d == h {
			return l, nil
		}
	}
	return nil, errdefs.NotFoundf("image has no blob %s", h)
}

// contentIndex is a go-containerregistry index over images it holds.
type contentIndex struct {
	raw       []byte
	mediaType types.MediaType
	parsed    *v1.IndexManifest
	images    map[v1.Hash]v1.Image
}

var _ v1.ImageIndex = (*contentIndex)(nil)

func newContentIndex(raw []byte, mediaType string, images []*contentImage) (*contentIndex, error) {
	m, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse index: %w", err)
	}
	idx := &contentIndex{raw: raw, mediaType: types.MediaType(mediaType), parsed: m, images: map[v1.Hash]v1.Image{}}
	for _, img := range images {
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		idx.images[d] = img
	}
	return idx, nil
}

func (x *contentIndex) MediaType() (types.MediaType, error)       { return x.mediaType, nil }
func (x *contentIndex) Digest() (v1.Hash, error)                  { return partial.Digest(x) }
func (x *contentIndex) Size() (int64, error)                      { return int64(len(x.raw)), nil }
func (x *contentIndex) IndexManifest() (*v1.IndexManifest, error) { return x.parsed.DeepCopy(), nil }
func (x *contentIndex) RawManifest() ([]byte, error)              { return x.raw, nil }
func (x *contentIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, errdefs.NotFoundf("index has no nested index %s", h)
}

func (x *contentIndex) Image(h v1.Hash) (v1.Image, error) {
	if img, ok := x.images[h]; ok {
		return img, nil
	}
	return nil, errdefs.NotFoundf("index has no image %s", h)
}
