package layer

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
)

// ContentLayer returns a go-containerregistry layer whose bytes are the
// content-store blob desc describes, diffID being the digest of its
// uncompressed tar. Its media type is desc's. go-containerregistry writers
// (remote, layout, tarball) read it straight from the store.
func ContentLayer(ctx context.Context, cs content.Store, desc ocispec.Descriptor, diffID digest.Digest) v1.Layer {
	return &contentLayer{ctx: ctx, cs: cs, desc: desc, diffID: diffID}
}

type contentLayer struct {
	ctx    context.Context // ggcr's interfaces take none; reads use this one
	cs     content.Store
	desc   ocispec.Descriptor
	diffID digest.Digest
}

var _ v1.Layer = (*contentLayer)(nil)

func (l *contentLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.desc.Digest.String()) }
func (l *contentLayer) DiffID() (v1.Hash, error) { return v1.NewHash(l.diffID.String()) }
func (l *contentLayer) Size() (int64, error)     { return l.desc.Size, nil }
func (l *contentLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}

func (l *contentLayer) Compressed() (io.ReadCloser, error) {
	ra, err := l.cs.ReaderAt(l.ctx, l.desc)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", l.desc.Digest, err)
	}
	return readerAtCloser{Reader: io.NewSectionReader(ra, 0, ra.Size()), c: ra}, nil
}

func (l *contentLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	tr, err := Decompress(rc)
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	return multiCloser{Reader: tr, cs: []io.Closer{tr, rc}}, nil
}

type readerAtCloser struct {
	io.Reader
	c io.Closer
}

func (r readerAtCloser) Close() error { return r.c.Close() }

type multiCloser struct {
	io.Reader
	cs []io.Closer
}

func (m multiCloser) Close() error {
	var first error
	for _, c := range m.cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
