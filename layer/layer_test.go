package layer

import (
	"bytes"
	"io"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestBlobLabelRoundTrip(t *testing.T) {
	t.Parallel()
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerZstd, Digest: digest.FromString("x"), Size: 42}
	got, err := ParseBlobLabel(BlobLabel(d))
	if err != nil || got.MediaType != d.MediaType || got.Digest != d.Digest || got.Size != d.Size {
		t.Errorf("ParseBlobLabel(BlobLabel(%v)) = %v, %v", d, got, err)
	}
	for _, bad := range []string{"", "a|b", "m|sha256:nope|1", "m|" + digest.FromString("x").String() + "|-1"} {
		if _, err := ParseBlobLabel(bad); err == nil {
			t.Errorf("ParseBlobLabel(%q) succeeded", bad)
		}
	}
}

func TestCompression(t *testing.T) {
	t.Parallel()
	level := func(n int) *int { return &n }
	for _, tc := range []struct {
		c    Compression
		name string
		err  string
	}{
		{Compression{}, Gzip, ""},
		{Compression{Type: Zstd, Level: level(22)}, Zstd, ""},
		{Compression{Type: Uncompressed}, Uncompressed, ""},
		{Compression{Type: Gzip, Level: level(10)}, Gzip, "gzip levels are 0 to 9"},
		{Compression{Type: Zstd, Level: level(23)}, Zstd, "zstd levels are 0 to 22"},
		{Compression{Type: "lz4"}, "lz4", "unknown compression"},
	} {
		t.Run(tc.name+" "+tc.err, func(t *testing.T) {
			if got := tc.c.Name(); got != tc.name {
				t.Errorf("Name = %q, want %q", got, tc.name)
			}
			err := tc.c.Validate()
			if tc.err == "" && err != nil || tc.err != "" && (!errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("Validate = %v, want %q", err, tc.err)
			}
			if tc.err != "" {
				return
			}
			// What the compressor writes, Decompress reads back.
			var buf bytes.Buffer
			w, err := tc.c.Compressor(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("layer tar")); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := Decompress(&buf)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if b, err := io.ReadAll(r); err != nil || string(b) != "layer tar" {
				t.Errorf("round trip = %q, %v", b, err)
			}
		})
	}
}

func TestMediaType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		comp string
		oci  bool
		want string
	}{
		{Gzip, true, ocispec.MediaTypeImageLayerGzip},
		{Gzip, false, DockerLayerGzip},
		{Zstd, true, ocispec.MediaTypeImageLayerZstd},
		{Zstd, false, DockerLayerZstd},
		{Uncompressed, true, ocispec.MediaTypeImageLayer},
		{Uncompressed, false, DockerLayer},
	} {
		if got := MediaType(tc.comp, tc.oci); got != tc.want {
			t.Errorf("MediaType(%s, oci=%v) = %s, want %s", tc.comp, tc.oci, got, tc.want)
		}
	}
}
