package remote

import (
	"context"
	"errors"
)

// IndexUsage counts what an index holds: keys, records (one per writer and
// key) and the bytes of the layers they name (a blob named by several
// records counts once per record).
type IndexUsage struct {
	Keys, Records, Bytes int64
}

// SharedUsage is what one shared cache holds, for kiln du. It is kept
// apart from the daemon's own disk usage: the blobs live in the shared
// store, not under the daemon's root.
type SharedUsage struct {
	// Name is the cache's progress name ("redis"), Index where it is
	// (its address without password).
	Name, Index string
	IndexUsage
	// Blobs and BlobBytes count the blob stores' blobs that can be
	// counted (directories); BlobsCounted is false when none could.
	Blobs        int
	BlobBytes    int64
	BlobsCounted bool
	// Pending counts the steps this daemon is still writing to the cache.
	Pending int64
}

// usager is implemented by indexes that can count what they hold.
type usager interface {
	Usage(ctx context.Context) (IndexUsage, error)
}

// blobUsager is implemented by blob stores that can count their blobs.
type blobUsager interface {
	Usage(ctx context.Context) (blobs int, size int64, err error)
}

// Usage reports what the shared cache holds (kiln du's shared line). It
// walks the index and the blob directory, so it takes a while on big
// caches; the index part is skipped while the index is unavailable.
func (s *Shared) Usage(ctx context.Context) (SharedUsage, error) {
	u := SharedUsage{Name: s.name, Index: s.IndexAddr(), Pending: s.Pending()}
	var errs []error
	if iu, ok := s.index.(usager); ok {
		n, err := iu.Usage(ctx)
		u.IndexUsage = n
		errs = append(errs, err)
	}
	if bu, ok := s.blobs.(blobUsager); ok {
		n, size, err := bu.Usage(ctx)
		u.Blobs, u.BlobBytes, u.BlobsCounted = n, size, err == nil
		errs = append(errs, err)
	}
	return u, errors.Join(errs...)
}

// Usage implements blobUsager for the stores that can count.
func (m multiStore) Usage(ctx context.Context) (int, int64, error) {
	var blobs int
	var size int64
	counted := false
	for _, s := range m {
		if bu, ok := s.(blobUsager); ok {
			n, sz, err := bu.Usage(ctx)
			if err != nil {
				return 0, 0, err
			}
			blobs, size, counted = blobs+n, size+sz, true
		}
	}
	if !counted {
		return 0, 0, errors.New("no blob store can be counted")
	}
	return blobs, size, nil
}
