package image

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/pkg/archive/compression"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
)

// Docker's layer media types (image-spec has only the OCI ones).
const (
	dockerLayerGzip         = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	dockerLayerForeignGzip  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	dockerLayerUncompressed = "application/vnd.docker.image.rootfs.diff.tar"
	dockerLayerZstd         = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	dockerManifest          = "application/vnd.docker.distribution.manifest.v2+json"
	dockerManifestList      = "application/vnd.docker.distribution.manifest.list.v2+json"

	// Non-distributable layers are deprecated in image-spec but still
	// found in images (Windows bases); they unpack like the others.
	ociLayerNondistributable     = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	ociLayerNondistributableGzip = ociLayerNondistributable + "+gzip"
	ociLayerNondistributableZstd = ociLayerNondistributable + "+zstd"
)

// Layer compressions, as core/labels.Blob names them.
const (
	compGzip         = "gzip"
	compZstd         = "zstd"
	compUncompressed = "uncompressed"
)

// layerCompression returns the compression a layer media type says its
// blob has, or an error for media types that are not layers Kiln can
// unpack (encrypted layers, artifacts).
func layerCompression(mt string) (string, error) {
	switch mt {
	case ocispec.MediaTypeImageLayerGzip, ociLayerNondistributableGzip,
		dockerLayerGzip, dockerLayerForeignGzip:
		return compGzip, nil
	case ocispec.MediaTypeImageLayerZstd, ociLayerNondistributableZstd,
		dockerLayerZstd:
		return compZstd, nil
	case ocispec.MediaTypeImageLayer, ociLayerNondistributable,
		dockerLayerUncompressed:
		return compUncompressed, nil
	}
	return "", errdefs.WithClass(errdefs.ErrUnimplemented, fmt.Errorf("layer media type %q is not supported (want a tar, tar+gzip or tar+zstd layer)", mt))
}

func isIndex(mt string) bool    { return mt == ocispec.MediaTypeImageIndex || mt == dockerManifestList }
func isManifest(mt string) bool { return mt == ocispec.MediaTypeImageManifest || mt == dockerManifest }

// decompress returns the layer tar inside a blob of the given compression.
// The stream's own magic bytes decide (containerd's DecompressStream), so a
// blob whose media type names the wrong compression still unpacks; its
// diffID is checked against the image config anyway.
func decompress(r io.Reader) (io.ReadCloser, error) {
	rc, err := compression.DecompressStream(r)
	if err != nil {
		return nil, errdefs.WithClass(errdefs.ErrInvalidArgument, fmt.Errorf("decompress layer: %w", err))
	}
	return rc, nil
}

// sniffMediaType returns the media type a manifest or index JSON declares,
// or guesses it from its fields when it declares none (OCI allows that).
func sniffMediaType(b []byte) string {
	var m struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return ""
	}
	switch {
	case m.MediaType != "":
		return m.MediaType
	case m.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	case m.Config != nil:
		return ocispec.MediaTypeImageManifest
	}
	return ""
}
