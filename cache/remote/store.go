package remote

import (
	"context"
	"io"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BlobStore holds layer blobs by digest: a shared directory, a registry
// repository, a client's OCI layout. Implementations are safe for
// concurrent use, also by several daemons on one store.
type BlobStore interface {
	// Stat returns the size of blob dgst, or an error in the
	// errdefs.ErrNotFound class.
	Stat(ctx context.Context, dgst digest.Digest) (int64, error)
	// Open returns the blob's bytes. The reader may return anything:
	// callers check the digest of what they read.
	Open(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
	// Put stores the blob desc describes with the bytes of r, checking
	// them against desc.Digest and desc.Size; a store never shows a
	// partial or mismatched blob. A blob the store has is not written
	// again (r is not read).
	Put(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error
}

// BlobRemover is implemented by blob stores that can drop a blob found to
// be corrupt, so that the next writer stores it again.
type BlobRemover interface {
	Remove(ctx context.Context, dgst digest.Digest) error
}

// BlobCopier is implemented by blob stores that copy a blob from another
// store better than by reading it (a registry mounts a blob from another
// repository of the same registry).
type BlobCopier interface {
	PutFrom(ctx context.Context, desc ocispec.Descriptor, src BlobStore) error
}

// Index maps cache keys to records, shared by many daemons (Redis).
// Writers add records; none replaces another writer's.
type Index interface {
	// Get returns the records of key, one per writer, or an error in the
	// errdefs.ErrNotFound class. A hit refreshes the key's time to live.
	Get(ctx context.Context, key digest.Digest) ([]Record, error)
	// Put adds rec under rec.Writer (replacing only that writer's record
	// of the key), refreshes the key's time to live and, when build is
	// not empty, lists the key under that build.
	Put(ctx context.Context, rec Record, build string) error
	// Touch refreshes key's time to live and lists it under build, for a
	// record the daemon used without writing it again.
	Touch(ctx context.Context, key digest.Digest, build string) error
}

// Lister is implemented by indexes that can enumerate what they hold
// (kiln cache ls --remote).
type Lister interface {
	// List calls fn for every record (every record of build's keys when
	// build is not empty).
	List(ctx context.Context, build string, fn func(Record) error) error
}

// MultiStore returns a BlobStore over several: reads come from the first
// that has a blob, writes go to every one. One store is returned as it is.
func MultiStore(stores ...BlobStore) BlobStore {
	if len(stores) == 1 {
		return stores[0]
	}
	return multiStore(stores)
}

type multiStore []BlobStore

func (m multiStore) Stat(ctx context.Context, dgst digest.Digest) (int64, error) {
	var first error
	for _, s := range m {
		size, err := s.Stat(ctx, dgst)
		if err == nil {
			return size, nil
		}
		if first == nil {
			first = err
		}
	}
	return 0, first
}

func (m multiStore) Open(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	var first error
	for _, s := range m {
		rc, err := s.Open(ctx, desc)
		if err == nil {
			return rc, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// Put writes to each store in turn; r is read once, by the first store
// that lacks the blob, and the others copy from it.
func (m multiStore) Put(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	var from BlobStore
	for _, s := range m {
		if from == nil {
			if err := s.Put(ctx, desc, r); err != nil {
				return err
			}
			from = s
			continue
		}
		if err := copyBlob(ctx, desc, from, s); err != nil {
			return err
		}
	}
	return nil
}

// PutFrom implements BlobCopier: each store copies from src its own best
// way.
func (m multiStore) PutFrom(ctx context.Context, desc ocispec.Descriptor, src BlobStore) error {
	for _, s := range m {
		if err := copyBlob(ctx, desc, src, s); err != nil {
			return err
		}
	}
	return nil
}
