package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/iox"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
)

// FileStore is a BlobStore in a directory, laid out like an OCI image
// layout: blobs/<algorithm>/<encoded digest>. Several daemons, on one
// machine or over a shared file system, may use one directory at once: a
// blob is written to a temporary file next to its final name, checked, and
// renamed into place, so no reader sees a partial or wrong blob under a
// digest's name.
//
// (containerd's local content store keeps ingest state in memory and
// locks per process, so it is not safe for several daemons on one
// directory; hence this small store.)
type FileStore struct {
	dir string
}

var (
	_ BlobStore   = (*FileStore)(nil)
	_ BlobRemover = (*FileStore)(nil)
)

// tempPrefix starts the names of blobs being written.
const tempPrefix = ".tmp-"

// staleTemp is how old a temporary file must be before OpenFileStore takes
// it for a crashed writer's leftover and removes it.
const staleTemp = time.Hour

// OpenFileStore opens (creating it if needed) the blob store in dir, which
// must be an absolute path, and removes temporary files that writers left
// more than an hour ago.
func OpenFileStore(dir string) (*FileStore, error) {
	if !filepath.IsAbs(dir) {
		return nil, errdefs.Invalidf("blob store %q: not an absolute path", dir)
	}
	blobs := filepath.Join(dir, "blobs", string(digest.SHA256))
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", dir, err)
	}
	if err := writeLayoutFile(dir); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(blobs)
	if err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", dir, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTemp {
			_ = os.Remove(filepath.Join(blobs, e.Name()))
		}
	}
	return &FileStore{dir: dir}, nil
}

// writeLayoutFile writes the oci-layout marker if it is missing.
func writeLayoutFile(dir string) error {
	p := filepath.Join(dir, ocispec.ImageLayoutFile)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return writeFileAtomic(p, []byte(`{"imageLayoutVersion":"`+ocispec.ImageLayoutVersion+`"}`))
}

// Dir returns the store's directory.
func (s *FileStore) Dir() string { return s.dir }

func (s *FileStore) path(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", errdefs.Invalidf("blob digest %q: %v", dgst, err)
	}
	return filepath.Join(s.dir, "blobs", string(dgst.Algorithm()), dgst.Encoded()), nil
}

// Stat implements BlobStore.
func (s *FileStore) Stat(_ context.Context, dgst digest.Digest) (int64, error) {
	p, err := s.path(dgst)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errdefs.NotFoundf("blob %s is not in %s", dgst, s.dir)
	}
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", dgst, err)
	}
	return fi.Size(), nil
}

// Open implements BlobStore.
func (s *FileStore) Open(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	p, err := s.path(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFoundf("blob %s is not in %s", desc.Digest, s.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", desc.Digest, err)
	}
	return f, nil
}

// Put implements BlobStore.
func (s *FileStore) Put(ctx context.Context, desc ocispec.Descriptor, r io.Reader) (err error) {
	p, err := s.path(desc.Digest)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(p); err == nil && fi.Size() == desc.Size {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(p), tempPrefix+randomHex()+"-")
	if err != nil {
		return fmt.Errorf("write blob %s to %s: %w", desc.Digest, s.dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := copyVerified(ctx, newWritebackFile(f), r, desc); err != nil {
		return fmt.Errorf("write blob %s to %s: %w", desc.Digest, s.dir, err)
	}
	if err := f.Chmod(0o444); err != nil {
		return fmt.Errorf("write blob %s to %s: %w", desc.Digest, s.dir, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write blob %s to %s: %w", desc.Digest, s.dir, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write blob %s to %s: %w", desc.Digest, s.dir, err)
	}
	// A concurrent writer may have renamed the same bytes into place
	// first; renaming over it changes nothing a reader could see.
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write blob %s to %s: %w", desc.Digest, s.dir, err)
	}
	return nil
}

// Remove implements BlobRemover.
func (s *FileStore) Remove(_ context.Context, dgst digest.Digest) error {
	p, err := s.path(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", dgst, err)
	}
	return nil
}

// Usage counts the store's blobs and their bytes.
func (s *FileStore) Usage(ctx context.Context) (blobs int, size int64, err error) {
	root := filepath.Join(s.dir, "blobs")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		blobs++
		size += info.Size()
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("blob store %s usage: %w", s.dir, err)
	}
	return blobs, size, nil
}

// copyVerified copies r to w, failing (in the failed-precondition class)
// unless r holds exactly desc.Size bytes hashing to desc.Digest.
func copyVerified(ctx context.Context, w io.Writer, r io.Reader, desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return errdefs.Invalidf("blob digest %q: %v", desc.Digest, err)
	}
	d := desc.Digest.Algorithm().Digester()
	n, err := io.Copy(io.MultiWriter(w, d.Hash()), io.LimitReader(iox.ContextReader(ctx, r), desc.Size+1))
	if err != nil {
		return err
	}
	if n != desc.Size {
		return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("got %d bytes, want %d", n, desc.Size))
	}
	if got := d.Digest(); got != desc.Digest {
		return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("content has digest %s", got))
	}
	return nil
}

// writeFileAtomic writes data to p through a temporary file and a rename.
func writeFileAtomic(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), tempPrefix)
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Chmod(0o644), f.Sync(), f.Close()); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
