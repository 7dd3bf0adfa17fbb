// Package gateway runs gateway frontends: frontend images that drive a
// build through BuildKit's frontend API (the LLBBridge gRPC service of
// github.com/moby/buildkit/frontend/gateway/pb), so that an unmodified
// BuildKit frontend, such as BuildKit's own Dockerfile frontend named by
// `# syntax=docker/dockerfile:1`, builds on Kiln.
//
// Frontend implements frontend.Frontend under the name "gateway.v0". Its
// Solve resolves the image named by the "source" option, builds its root
// filesystem, and runs its entrypoint in a container (through the
// engine's frontend.Bridge) with BuildKit's protocol facts:
//
//   - the frontend options as BUILDKIT_FRONTEND_OPT_<n>=<key>=<value>
//     environment variables (filename, target, build-arg:*, label:*,
//     platform, context:*, no-cache, add-hosts, force-network-mode, plus
//     source and cmdline), BUILDKIT_SESSION_ID, BUILDKIT_WORKERS and
//     BUILDKIT_EXPORTEDPRODUCT;
//   - the LLBBridge service served over the container's stdin (requests)
//     and stdout (answers): the frontend is the gRPC client;
//   - the image's Entrypoint ("/run" when it has none), Env and
//     WorkingDir; the label moby.buildkit.frontend.network.none=true
//     takes the network away.
//
// The server answers Ping (the gateway and LLB capabilities Kiln
// supports, so frontends avoid the rest), ResolveImageConfig, Solve (an
// LLB definition is converted with frontend/llb; results are solved only
// when read or evaluated), ReadFile, ReadDir, StatFile, Evaluate, Inputs,
// Warn and Return. Containers inside the frontend (NewContainer,
// ExecProcess) and source-meta resolution are not supported and are
// reported as missing capabilities.
//
// When the request carries the Dockerfile itself (Kiln's client sends its
// bytes), the frontend's local://dockerfile source is served from memory;
// local://context and named contexts come from the client session like
// any local source. The returned result's refs become the images' root
// vertices and containerimage.config their configs; a returned error
// keeps its Dockerfile location.
//
// This package imports frontend, frontend/llb, graph and core, plus gRPC
// and BuildKit's API types: it is the gRPC edge to frontend containers.
package gateway
