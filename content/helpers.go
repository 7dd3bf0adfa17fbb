package content

import (
	"context"
	"github.com/kiln-build/kiln/internal/iox"

	"fmt"
	"io"

	ctrcontent "github.com/containerd/containerd/v2/core/content"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
)

// WriteBlob stores the bytes of r as the blob desc describes and returns
// once it is committed, or at once (without reading r) if the blob is
// already in st.
//
// The data must match desc.Digest and desc.Size exactly; if it does not,
// nothing becomes visible and the error is in the failed-precondition
// class. ref names the ingest: writers sharing a ref take turns, so
// concurrent WriteBlob calls for one blob with one ref write it once and
// all return nil. An empty ref defaults to the digest, which gives that
// behaviour for free.
//
// WriteBlob never resumes a partial ingest left by an earlier failed
// attempt: it starts over.
func WriteBlob(ctx context.Context, st Store, ref string, r io.Reader, desc ocispec.Descriptor) (err error) {
	if err := validate(desc); err != nil {
		return err
	}
	if ref == "" {
		ref = desc.Digest.String()
	}
	cw, err := ctrcontent.OpenWriter(ctx, st, ctrcontent.WithRef(ref), ctrcontent.WithDescriptor(desc))
	if err != nil {
		if errdefs.IsAlreadyExists(classify(err)) {
			return nil
		}
		return fmt.Errorf("write blob %s: %w", desc.Digest, classify(err))
	}
	committing := false
	defer func() {
		if err == nil {
			return
		}
		if !committing {
			// We still hold the ingest: remove it, then release it.
			_ = st.Abort(context.WithoutCancel(ctx), ref)
			_ = cw.Close()
			return
		}
		discard(context.WithoutCancel(ctx), st, ref)
	}()

	// containerd's content.Copy would resume a partial ingest; Kiln never
	// resumes (DESIGN.md: incomplete work is discarded), so copy here.
	ws, err := cw.Status()
	if err != nil {
		return fmt.Errorf("write blob %s: %w", desc.Digest, classify(err))
	}
	if ws.Offset > 0 {
		if err := cw.Truncate(0); err != nil {
			return fmt.Errorf("write blob %s: restart ingest: %w", desc.Digest, err)
		}
	}
	n, err := io.Copy(cw, io.LimitReader(iox.ContextReader(ctx, r), desc.Size+1))
	if err != nil {
		return fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	if n != desc.Size {
		return errdefs.WithClass(errdefs.ErrFailedPrecondition,
			fmt.Errorf("write blob %s: got %s bytes, descriptor says %d", desc.Digest, sizeString(n, desc.Size), desc.Size))
	}
	committing = true
	if err := cw.Commit(ctx, desc.Size, desc.Digest); err != nil {
		if errdefs.IsAlreadyExists(err) {
			return nil // another writer committed the same bytes first
		}
		return fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	return nil
}

// discard removes the ingest ref after a failed Commit, which has already
// released it. It takes the ref back first, so it cannot pull the ingest
// from under another writer that got it in between.
func discard(ctx context.Context, st Store, ref string) {
	w, err := st.Writer(ctx, ctrcontent.WithRef(ref))
	if err != nil {
		return // someone else holds it now, or it is gone
	}
	_ = st.Abort(ctx, ref)
	_ = w.Close()
}

func validate(desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return errdefs.Invalidf("blob descriptor: digest %q: %v", desc.Digest, err)
	}
	if desc.Size < 0 {
		return errdefs.Invalidf("blob descriptor %s: negative size %d", desc.Digest, desc.Size)
	}
	// containerd skips the size check for size 0; the only 0-byte blob is
	// the empty one, so check its digest here instead.
	if desc.Size == 0 && desc.Digest != desc.Digest.Algorithm().FromBytes(nil) {
		return errdefs.Invalidf("blob descriptor %s: size 0 but not the digest of empty content", desc.Digest)
	}
	return nil
}

func sizeString(n, want int64) string {
	if n > want {
		return fmt.Sprintf("more than %d", want)
	}
	return fmt.Sprint(n)
}

// ReadBlob returns the whole blob desc describes, checked against
// desc.Digest (and desc.Size when it is not zero). Use it for manifests and
// configs; stream layers through st.ReaderAt instead. A missing blob is in
// the not-found class.
func ReadBlob(ctx context.Context, st Store, desc ocispec.Descriptor) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, errdefs.Invalidf("read blob: digest %q: %v", desc.Digest, err)
	}
	p, err := ctrcontent.ReadBlob(ctx, st, desc)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", desc.Digest, classify(err))
	}
	if desc.Size != 0 && int64(len(p)) != desc.Size {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition,
			fmt.Errorf("read blob %s: stored size %d, descriptor says %d", desc.Digest, len(p), desc.Size))
	}
	if got := desc.Digest.Algorithm().FromBytes(p); got != desc.Digest {
		return nil, errdefs.WithClass(errdefs.ErrInternal,
			fmt.Errorf("read blob %s: stored bytes hash to %s (corrupt store)", desc.Digest, got))
	}
	return p, nil
}

// Exists reports whether st has the blob dgst.
func Exists(ctx context.Context, st Store, dgst digest.Digest) (bool, error) {
	_, err := st.Info(ctx, dgst)
	switch {
	case err == nil:
		return true, nil
	case errdefs.IsNotFound(classify(err)):
		return false, nil
	default:
		return false, fmt.Errorf("stat blob %s: %w", dgst, classify(err))
	}
}

// Usage is the disk space committed blobs take.
type Usage struct {
	Blobs int   // number of committed blobs
	Size  int64 // their total size in bytes
}

// DiskUsage sums the sizes of all committed blobs. Per-blob sizes and times
// for gc come from st.Walk (content.Info.Size, CreatedAt, UpdatedAt).
func DiskUsage(ctx context.Context, st Store) (Usage, error) {
	var u Usage
	err := st.Walk(ctx, func(info ctrcontent.Info) error {
		u.Blobs++
		u.Size += info.Size
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("content usage: %w", classify(err))
	}
	return u, nil
}
