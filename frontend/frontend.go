// Package frontend defines how a build definition (a Dockerfile, for the
// built-in frontend) becomes Kiln's build graph.
//
// A Frontend is chosen by name from a map built in cmd/kilnd. It reads what
// it needs from the Request (the Dockerfile bytes, build args, platforms) and
// asks the ImageResolver for base-image configs; it never touches the
// network or the daemon's storage itself. A frontend that must build while
// it converts (the gateway) does so through the request's Bridge. It
// imports graph and core only (the image config types are
// core/imageconfig's), and BuildKit's LLB types for frontend inputs.
package frontend

import (
	"context"

	"github.com/moby/buildkit/solver/pb"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/graph"
)

// Frontend turns a request into a build graph per platform.
type Frontend interface {
	Solve(ctx context.Context, req Request) (*Result, error)
}

// Request is everything a frontend may use.
type Request struct {
	// Dockerfile is the build definition's bytes and DockerfileName the
	// name the user gave it (for messages: "Dockerfile:3: ...").
	Dockerfile     []byte
	DockerfileName string
	// Dockerignore holds the content of <Dockerfile>.dockerignore if it
	// exists, else .dockerignore, else nil.
	Dockerignore []byte

	Target    string
	BuildArgs map[string]string
	Labels    map[string]string
	// Platforms to build for; empty means BuildPlatform.
	Platforms []ocispec.Platform
	// BuildPlatform is the daemon's native platform.
	BuildPlatform ocispec.Platform
	// NamedContexts are --build-context values by name.
	NamedContexts map[string]NamedContext
	// NoCache ignores the cache for every step; NoCacheFilter for the
	// steps of the named stages only.
	NoCache       bool
	NoCacheFilter []string
	// Network is the network of RUN steps that do not ask for one
	// (--network).
	Network sandbox.NetMode
	// ExtraHosts are added to every RUN step's /etc/hosts (--add-host).
	ExtraHosts []sandbox.HostIP
	// ContextName is the LocalSource name of the main build context
	// ("context"); SharedKeyHint is passed on to its LocalSource.
	ContextName   string
	SharedKeyHint string

	// Resolver looks up base images. Required unless every stage is FROM
	// scratch.
	Resolver ImageResolver

	// Opts are BuildKit-style frontend options (buildctl --opt, BuildKit's
	// FrontendAttrs: "source", "cmdline", "build-arg:X", ...), for
	// frontends that take them (the gateway); they win over what the
	// typed fields above say.
	Opts map[string]string
	// Inputs are BuildKit frontend inputs (FrontendInputs): LLB
	// definitions by name, handed to gateway frontends as they are.
	Inputs map[string]*pb.Definition
	// Bridge lets a frontend build while it converts (the gateway runs
	// its frontend image and solves what that asks for). The engine sets
	// it for every build; the Dockerfile frontend does not use it.
	Bridge Bridge
}

// NamedContext is a --build-context value: a local directory the client
// syncs (by its LocalSource name) or an image reference.
type NamedContext struct {
	Local string // LocalSource name for a directory context
	Image string // image reference for docker-image://
}

// ImageResolver resolves an image reference for a platform to a pinned
// reference and its config.
type ImageResolver interface {
	// ResolveImageConfig returns the digest of the platform's manifest and
	// the raw image config JSON for ref.
	ResolveImageConfig(ctx context.Context, ref string, platform ocispec.Platform) (imageconfig.Resolved, error)
}

// Result is what a frontend produces: one image per platform.
type Result struct {
	Images []Image
	// Warnings are problems that did not stop the build (lint findings,
	// build args no stage consumed), in file order, each once.
	Warnings []Warning
}

// Warning is a finding about the build definition that does not fail the
// build.
type Warning struct {
	// Rule names the check, e.g. "UnusedBuildArg" or a lint rule such as
	// "JSONArgsRecommended".
	Rule    string
	Message string
	// File and Range place the finding; both are zero when it concerns
	// the request rather than a line (an unused --build-arg).
	File  string
	Range errdefs.Range
}

// Image is the build result for one platform.
type Image struct {
	Platform ocispec.Platform
	// Root is the final filesystem; nil means an empty one (FROM scratch
	// with no changes).
	Root *graph.Vertex
	// Config is the image config the frontend computed: the base image's
	// config updated per instruction, with one history entry per
	// instruction (EmptyLayer set for metadata-only steps). RootFS and
	// the layer part of History are completed by the exporter.
	Config ocispec.Image
	// ConfigExt holds the Docker image config fields that ocispec.Image
	// lacks (Healthcheck, OnBuild, Shell). DockerConfig joins both into
	// the config an exporter writes.
	ConfigExt imageconfig.ConfigExt
	// BaseImage is the pinned reference of the image the result's first
	// stage starts from ("" for FROM scratch); exporters reuse the layer
	// blobs of the base image as they are.
	BaseImage string
}

// DockerConfig returns the image's config with ConfigExt folded into its
// "config" object.
func (im Image) DockerConfig() imageconfig.DockerImage {
	return imageconfig.Docker(im.Config, im.ConfigExt)
}
