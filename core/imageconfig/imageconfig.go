// Package imageconfig holds the image config vocabulary the frontend, the
// exporters, the image resolver and the caches share: Docker's image
// config (the OCI one plus Healthcheck, OnBuild and Shell), a resolved
// base image, and the config field inline cache lives in.
//
// It imports no other Kiln package.
package imageconfig

import (
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ConfigExt holds the fields Docker's image config adds to the OCI image
// config's "config" object.
type ConfigExt struct {
	Healthcheck *HealthConfig `json:"Healthcheck,omitempty"`
	OnBuild     []string      `json:"OnBuild,omitempty"`
	Shell       []string      `json:"Shell,omitempty"`
}

// HealthConfig is Docker's HEALTHCHECK configuration. Zero durations and
// Retries mean "inherit the default". Field order and names match Docker's,
// so history lines format the same way.
type HealthConfig struct {
	// Test is ["NONE"], ["CMD", argv...] or ["CMD-SHELL", command].
	Test          []string      `json:",omitempty"`
	Interval      time.Duration `json:",omitempty"`
	Timeout       time.Duration `json:",omitempty"`
	StartPeriod   time.Duration `json:",omitempty"`
	StartInterval time.Duration `json:",omitempty"`
	Retries       int           `json:",omitempty"`
}

// DockerImageConfig is the "config" object of a Docker image config: the
// OCI fields plus Docker's extensions.
type DockerImageConfig struct {
	ocispec.ImageConfig
	ConfigExt
}

// DockerImage is an image config in Docker's format: ocispec.Image whose
// "config" object carries Docker's extensions. Its JSON encoding is the
// config blob exporters write; decoding one reads both parts.
type DockerImage struct {
	ocispec.Image
	Config DockerImageConfig `json:"config,omitempty"`
}

// Docker joins an OCI config and Docker's extensions into the config an
// exporter writes.
func Docker(cfg ocispec.Image, ext ConfigExt) DockerImage {
	d := DockerImage{Image: cfg}
	d.Config = DockerImageConfig{ImageConfig: cfg.Config, ConfigExt: ext}
	d.Image.Config = ocispec.ImageConfig{}
	return d
}

// Resolved is a base image resolved for one platform.
type Resolved struct {
	// Ref is the normalised reference pinned by digest, e.g.
	// "docker.io/library/busybox:latest@sha256:...".
	Ref    string
	Digest digest.Digest // the manifest digest for the platform
	Config []byte        // the image config JSON (ocispec.Image)
}

// InlineCacheKey is the image config field that holds inline build cache
// metadata (--cache-to type=inline).
const InlineCacheKey = "kiln.cache.v1"
