package layer

import (
	"fmt"
	"io"
	"runtime"
	"strconv"

	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/attrs"
)

// Layer compressions, as core/labels.Blob names them and as the
// compression attribute spells them.
const (
	Gzip         = "gzip"
	Zstd         = "zstd"
	Uncompressed = "uncompressed"
)

// Compressions lists them in the order blobs are looked for when any
// compression will do.
func Compressions() []string { return []string{Gzip, Zstd, Uncompressed} }

// Compression says how new layer blobs are compressed.
type Compression struct {
	// Type is Gzip (the default when empty), Zstd or Uncompressed.
	Type string
	// Level is the compression level: 0-9 for gzip, 0-22 for zstd (zstd
	// levels map to the encoder's four speeds as zstd's own do). Nil is
	// the compressor's default.
	Level *int
	// Force recompresses layers whose existing blob has another
	// compression (base image layers) too. Without it, existing blobs are
	// reused in whatever compression they have.
	Force bool
}

// Name is the compression's name: Type, or Gzip when Type is empty.
func (c Compression) Name() string {
	if c.Type == "" {
		return Gzip
	}
	return c.Type
}

// Validate reports an unknown type or a level out of range.
func (c Compression) Validate() error {
	switch c.Name() {
	case Gzip:
		if c.Level != nil && (*c.Level < 0 || *c.Level > 9) {
			return errdefs.Invalidf("compression-level=%d: gzip levels are 0 to 9", *c.Level)
		}
	case Zstd:
		if c.Level != nil && (*c.Level < 0 || *c.Level > 22) {
			return errdefs.Invalidf("compression-level=%d: zstd levels are 0 to 22", *c.Level)
		}
	case Uncompressed:
	default:
		return errdefs.Invalidf("compression=%s: unknown compression (want %s, %s or %s)", c.Type, Gzip, Zstd, Uncompressed)
	}
	return nil
}

// gzipBlockSize is the size of the blocks pgzip compresses in parallel.
// It is fixed (not derived from the CPU count) so that the output, which
// depends on it, is the same on every machine.
const gzipBlockSize = 1 << 20

// Compressor returns a writer that compresses into w. Close flushes it
// (and does not close w).
func (c Compression) Compressor(w io.Writer) (io.WriteCloser, error) {
	switch c.Name() {
	case Gzip:
		level := pgzip.DefaultCompression
		if c.Level != nil {
			level = *c.Level
		}
		zw, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := zw.SetConcurrency(gzipBlockSize, max(2, runtime.GOMAXPROCS(0))); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zw, nil
	case Zstd:
		opts := []zstd.EOption{zstd.WithEncoderConcurrency(max(2, runtime.GOMAXPROCS(0)))}
		if c.Level != nil {
			opts = append(opts, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(*c.Level)))
		}
		zw, err := zstd.NewWriter(w, opts...)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zw, nil
	case Uncompressed:
		return nopWriteCloser{w}, nil
	}
	return nil, c.Validate()
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// Decompress returns the tar inside a layer blob; the stream's magic bytes
// decide the compression.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	rc, err := compression.DecompressStream(r)
	if err != nil {
		return nil, errdefs.WithClass(errdefs.ErrInvalidArgument, fmt.Errorf("decompress layer: %w", err))
	}
	return rc, nil
}

// Docker's layer media types (image-spec has only the OCI ones).
const (
	DockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	DockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	DockerLayer     = "application/vnd.docker.image.rootfs.diff.tar"
)

// MediaType is the media type of a layer blob of compression comp, OCI's
// or Docker's.
func MediaType(comp string, oci bool) string {
	switch {
	case comp == Zstd && oci:
		return ocispec.MediaTypeImageLayerZstd
	case comp == Zstd:
		return DockerLayerZstd
	case comp == Uncompressed && oci:
		return ocispec.MediaTypeImageLayer
	case comp == Uncompressed:
		return DockerLayer
	case oci:
		return ocispec.MediaTypeImageLayerGzip
	default:
		return DockerLayerGzip
	}
}

// BindCompression binds the compression attributes of an --output or a
// --cache-to value to c: compression (not empty), compression-level and
// force-compression.
func BindCompression(p *attrs.Parser, c *Compression) {
	p.Func("compression", func(v string) error {
		c.Type = v
		if v == "" {
			return fmt.Errorf("empty (want %s, %s or %s)", Gzip, Zstd, Uncompressed)
		}
		return Compression{Type: v}.Validate()
	})
	p.Func("compression-level", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		c.Level = &n
		return nil
	})
	p.Bool("force-compression", &c.Force)
}
