package gc

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
)

// roots are what the stored images need: their blobs (index, manifests,
// configs, layers; → an image name) and the chain IDs of their layers,
// which name the snapshots they unpack into.
type roots struct {
	blobs    map[digest.Digest]string
	chainIDs map[string]bool
}

// imageRoots walks every stored image. It is imagestore.Referenced plus
// the configs' diff IDs, in one pass.
func imageRoots(ctx context.Context, images Images, cs content.Store) (roots, error) {
	r := roots{blobs: map[digest.Digest]string{}, chainIDs: map[string]bool{}}
	imgs, err := images.List(ctx)
	if err != nil {
		return r, err
	}
	for _, img := range imgs {
		if err := r.walk(ctx, cs, imagestore.FamiliarName(img.Name), img.Target, 0); err != nil {
			return r, fmt.Errorf("image %s: %w", imagestore.FamiliarName(img.Name), err)
		}
	}
	return r, nil
}

// walk adds desc and what it references. Blobs the store lacks end the
// walk below them (an index's platforms that were never pulled).
func (r *roots) walk(ctx context.Context, cs content.Store, name string, desc ocispec.Descriptor, depth int) error {
	if _, ok := r.blobs[desc.Digest]; ok {
		return nil
	}
	r.blobs[desc.Digest] = name
	mt := types.MediaType(desc.MediaType)
	if !mt.IsIndex() && !mt.IsImage() || depth > 3 {
		return nil
	}
	b, err := content.ReadBlob(ctx, cs, desc)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if mt.IsIndex() {
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("index %s: %w", desc.Digest, err))
		}
		for _, m := range idx.Manifests {
			if err := r.walk(ctx, cs, name, m, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("manifest %s: %w", desc.Digest, err))
	}
	r.blobs[m.Config.Digest] = name
	for _, l := range m.Layers {
		r.blobs[l.Digest] = name
	}
	cb, err := content.ReadBlob(ctx, cs, m.Config)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil // not an image config: nothing unpacks from it
	}
	for _, c := range identity.ChainIDs(append([]digest.Digest(nil), cfg.RootFS.DiffIDs...)) {
		r.chainIDs[c.String()] = true
	}
	return nil
}
