package exporter

import (
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's media types (image-spec has only the OCI ones).
const (
	mediaDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaDockerConfig       = "application/vnd.docker.container.image.v1+json"
)

func manifestMediaType(oci bool) string {
	if oci {
		return ocispec.MediaTypeImageManifest
	}
	return mediaDockerManifest
}

func indexMediaType(oci bool) string {
	if oci {
		return ocispec.MediaTypeImageIndex
	}
	return mediaDockerManifestList
}

func configMediaType(oci bool) string {
	if oci {
		return ocispec.MediaTypeImageConfig
	}
	return mediaDockerConfig
}
