package registry

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/registry"
)

// Blobs is a remote.BlobStore in a registry repository: reads go through
// the resolver's mirrors, writes to the repository itself. A blob copied
// from another repository of the same registry is mounted, not uploaded.
type Blobs struct {
	r    *registry.Resolver
	repo name.Repository
}

var _ remote.BlobStore = (*Blobs)(nil)

// NewBlobs returns the blob store of ref's repository ([[cache.blob]]
// type = "registry").
func NewBlobs(r *registry.Resolver, ref string) (*Blobs, error) {
	repo, err := name.NewRepository(ref)
	if err != nil {
		parsed, perr := registry.ParseReference(ref)
		if perr != nil {
			return nil, perr
		}
		repo = parsed.Context()
	}
	return &Blobs{r: r, repo: repo}, nil
}

// Stat implements remote.BlobStore.
func (b *Blobs) Stat(ctx context.Context, dgst digest.Digest) (int64, error) {
	l, err := b.r.Layer(ctx, b.repo.Digest(dgst.String()))
	if err != nil {
		return 0, err
	}
	size, err := l.Size()
	if err != nil {
		return 0, registry.WrapError("pull", b.repo.Digest(dgst.String()), err)
	}
	return size, nil
}

// Open implements remote.BlobStore.
func (b *Blobs) Open(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	ref := b.repo.Digest(desc.Digest.String())
	l, err := b.r.Layer(ctx, ref)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, registry.WrapError("pull", ref, err)
	}
	return rc, nil
}

// Put implements remote.BlobStore.
func (b *Blobs) Put(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return b.put(ctx, desc, func() (io.ReadCloser, error) { return io.NopCloser(r), nil }, nil)
}

// PutFrom stores the blob desc from src: by a cross-repository mount when
// src is a repository of the same registry, else by streaming it.
func (b *Blobs) PutFrom(ctx context.Context, desc ocispec.Descriptor, src remote.BlobStore) error {
	var from name.Reference
	if s, ok := src.(*Blobs); ok && s.repo.RegistryStr() == b.repo.RegistryStr() {
		if s.repo.String() == b.repo.String() {
			if _, err := b.Stat(ctx, desc.Digest); err == nil {
				return nil
			}
		}
		from = s.repo.Digest(desc.Digest.String())
	}
	return b.put(ctx, desc, func() (io.ReadCloser, error) { return src.Open(ctx, desc) }, from)
}

func (b *Blobs) put(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error), mountFrom name.Reference) error {
	if err := desc.Digest.Validate(); err != nil {
		return errdefs.Invalidf("blob digest %q: %v", desc.Digest, err)
	}
	ref, opts, err := b.r.PushOptions(ctx, b.repo.Tag("latest"))
	if err != nil {
		return err
	}
	var l v1.Layer = &streamLayer{desc: desc, open: open}
	if mountFrom != nil {
		l = &ggcrremote.MountableLayer{Layer: l, Reference: mountFrom}
	}
	if err := ggcrremote.WriteLayer(ref.Context(), l, opts...); err != nil {
		return registry.WrapError("push", b.repo.Digest(desc.Digest.String()), err)
	}
	return nil
}

// streamLayer is a blob to upload: go-containerregistry checks the
// registry for it first and streams it only when it is missing; the
// registry checks the digest.
type streamLayer struct {
	desc ocispec.Descriptor
	open func() (io.ReadCloser, error)
}

func (l *streamLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.desc.Digest.String()) }
func (l *streamLayer) DiffID() (v1.Hash, error) {
	return v1.Hash{}, fmt.Errorf("the diffID of blob %s is not known here", l.desc.Digest)
}
func (l *streamLayer) Size() (int64, error) { return l.desc.Size, nil }
func (l *streamLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}
func (l *streamLayer) Compressed() (io.ReadCloser, error) { return l.open() }
func (l *streamLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, fmt.Errorf("blob %s: uncompressed form not available", l.desc.Digest)
}
