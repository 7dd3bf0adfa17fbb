// Package dockerfile is Kiln's built-in frontend: it turns a Dockerfile
// into the build graph, one image per requested platform.
//
//	fe := dockerfile.New()
//	res, err := fe.Solve(ctx, frontend.Request{Dockerfile: src, DockerfileName: "Dockerfile", ...})
//	// res.Images[i].Root is the graph of platform i, .Config its image config
//
// Solve parses the file (package instructions), checks it against the
// request (package convert: --target, .dockerignore) and converts it for
// every platform concurrently; base images are resolved once per
// (reference, platform) through Request.Resolver. Lint warnings and build
// args no stage consumed come back in Result.Warnings; with the
// "# check=error=true" directive they fail the build instead.
//
// OfflineResolver answers image lookups without a registry, for tools that
// show the graph of a Dockerfile (kiln debug graph).
//
// This package imports frontend, graph, core and its subpackages.
package dockerfile
