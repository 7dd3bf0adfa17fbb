package imagestore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
)

// isIndex reports whether mt is an OCI index or a Docker manifest list.
func isIndex(mt string) bool {
	return types.MediaType(mt).IsIndex()
}

// isManifest reports whether mt is an OCI or Docker schema 2 image manifest.
func isManifest(mt string) bool {
	return types.MediaType(mt).IsImage()
}

// Referenced returns every blob the stored images need: each target and,
// as far as the content store has them, the manifests of each index and
// the config and layers of each manifest. These are gc roots: a blob in the
// set must not be deleted. Blobs of an index's other platforms that were
// never fetched are in the set if the index names them, though the content
// store may not have them.
//
// gc must not run Referenced and delete concurrently with builds that
// store new images without its own lock: an image stored after Referenced
// returns is not in the set.
func (s *Store) Referenced(ctx context.Context) (map[digest.Digest]struct{}, error) {
	imgs, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[digest.Digest]struct{}{}
	for _, img := range imgs {
		if err := s.walk(ctx, img.Target, seen); err != nil {
			return nil, fmt.Errorf("image %s: %w", FamiliarName(img.Name), err)
		}
	}
	return seen, nil
}

// walk adds desc and what it references to seen. Missing blobs end the
// walk below them; other read errors are returned.
func (s *Store) walk(ctx context.Context, desc ocispec.Descriptor, seen map[digest.Digest]struct{}) error {
	if _, ok := seen[desc.Digest]; ok {
		return nil
	}
	seen[desc.Digest] = struct{}{}
	if !isIndex(desc.MediaType) && !isManifest(desc.MediaType) {
		return nil
	}
	b, err := content.ReadBlob(ctx, s.cs, desc)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var children []ocispec.Descriptor
	if isIndex(desc.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("index %s: %w", desc.Digest, err))
		}
		children = idx.Manifests
	} else {
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("manifest %s: %w", desc.Digest, err))
		}
		children = append([]ocispec.Descriptor{m.Config}, m.Layers...)
	}
	for _, c := range children {
		if err := s.walk(ctx, c, seen); err != nil {
			return err
		}
	}
	return nil
}
