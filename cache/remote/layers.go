package remote

import (
	"context"
	"fmt"
	"io"
	"sync"

	ctrcontent "github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/layer"
)

// LocalBlobs returns the daemon's content store as a BlobStore, the source
// of the blobs exporters copy out. dir, when not empty, is the store's
// directory (content.Open's): a FileStore on the same file system then
// hard-links blobs instead of copying them.
func LocalBlobs(cs content.Store, dir string) BlobStore { return contentBlobs{cs: cs, dir: dir} }

type contentBlobs struct {
	cs  content.Store
	dir string
}

func (c contentBlobs) Stat(ctx context.Context, dgst digest.Digest) (int64, error) {
	info, err := c.cs.Info(ctx, dgst)
	if err != nil {
		return 0, err
	}
	return info.Size, nil
}

func (c contentBlobs) Open(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	ra, err := c.cs.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{ctrcontent.NewReader(ra), ra}, nil
}

func (c contentBlobs) Put(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return content.WriteBlob(ctx, c.cs, "", r, desc)
}

// resultLayers returns the layers of the committed snapshot id: one blob
// per snapshot of its chain, made (or reused, see layer.Maker.Blob)
// in the daemon's content store, in parallel.
func resultLayers(ctx context.Context, lm *layer.Maker, id string, comp layer.Compression) ([]Layer, error) {
	chain, err := lm.Chain(ctx, id)
	if err != nil {
		return nil, err
	}
	return resultLayersOf(ctx, lm, chain, comp)
}

// resultLayersOf returns the layers of the committed snapshots chain.
func resultLayersOf(ctx context.Context, lm *layer.Maker, chain []string, comp layer.Compression) ([]Layer, error) {
	out := make([]Layer, len(chain))
	errs := make([]error, len(chain))
	var wg sync.WaitGroup
	for i, name := range chain {
		wg.Go(func() {
			b, err := lm.Blob(ctx, name, layer.BlobOptions{Compression: comp})
			out[i] = Layer{MediaType: b.Desc.MediaType, Digest: b.Desc.Digest, Size: b.Desc.Size, DiffID: b.DiffID}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// copyBlobs copies the layers' blobs that dst lacks from src, a few at a
// time.
func copyBlobs(ctx context.Context, layers []Layer, src, dst BlobStore) error {
	sem := make(chan struct{}, 3)
	errs := make([]error, len(layers))
	var wg sync.WaitGroup
	for i, l := range layers {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = context.Cause(ctx)
				return
			}
			errs[i] = copyBlob(ctx, l.Descriptor(), src, dst)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// copyBlob copies one blob from src to dst unless dst has it.
func copyBlob(ctx context.Context, desc ocispec.Descriptor, src, dst BlobStore) error {
	if size, err := dst.Stat(ctx, desc.Digest); err == nil && size == desc.Size {
		return nil
	} else if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stat blob %s: %w", desc.Digest, err)
	}
	if c, ok := dst.(BlobCopier); ok {
		if err := c.PutFrom(ctx, desc, src); err != nil {
			return fmt.Errorf("copy blob %s: %w", desc.Digest, err)
		}
		return nil
	}
	rc, err := src.Open(ctx, desc)
	if err != nil {
		return fmt.Errorf("read blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	if err := dst.Put(ctx, desc, rc); err != nil {
		return fmt.Errorf("store blob %s: %w", desc.Digest, err)
	}
	return nil
}
