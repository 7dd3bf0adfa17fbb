// Package convert turns a parsed Dockerfile (package instructions) into
// Kiln's build graph, the image config and its history, for one target
// platform at a time.
//
// # Using it
//
//	df, err := instructions.Parse(ctx, src, "Dockerfile")
//	c, err := convert.New(df, req)               // checks --target, reads .dockerignore
//	img, warnings, err := c.Convert(ctx, platform) // one per requested platform
//
// A Converter is safe for concurrent Convert calls; base images are
// resolved once per (reference, platform) across them, and the stages
// that do not depend on each other are resolved concurrently.
//
// # What it does
//
//   - Only the stages the target needs (its FROM chain, COPY --from,
//     RUN --mount from=, ONBUILD triggers) are converted; the others are not
//     even resolved.
//   - ARG scoping is Docker's: ARGs before the first FROM are usable in FROM
//     lines; inside a stage an ARG applies from its line on, and "ARG NAME"
//     brings in a global ARG's (or platform ARG's) value. The automatic
//     platform ARGs (BUILDPLATFORM, TARGETARCH, ...) are global ARGs.
//   - Values reach a step's definition only where they are used: COPY,
//     WORKDIR, ENV and the others carry expanded values; RUN gets the
//     stage's config Env plus the ARGs declared in scope (as Docker does),
//     so an undeclared --build-arg changes no digest. Proxy build args
//     (HTTP_PROXY and friends) go to ExecOp.ProxyEnv unless declared.
//   - Every instruction adds a history entry with created_by as BuildKit
//     writes it; metadata-only instructions have empty_layer set.
//
// # Graph shape per instruction
//
//	FROM image    SourceOp{Image: pinned ref}, Platform = the stage's
//	FROM scratch  nothing (NoInput)
//	FROM stage    the stage's last vertex
//	RUN           ExecOp{Root: current}, mounts as extra inputs
//	COPY / ADD    FileOp{Base: current, Copy from the source input}
//	COPY --link   FileOp{Base: NoInput, Copy}, then MergeOp(current, copy)
//	COPY <<EOF    an inline FileOp{Mkfile} copied like a source
//	ADD url/git   HTTPSource / GitSource vertex, then a copy
//	WORKDIR       FileOp{Mkdir -p} (none for "/")
//	others        config and history only
//
// Errors are *errdefs.SourceError values ("Dockerfile:3: ...") in the
// invalid-argument class, except resolver errors, which keep their class.
//
// This package imports frontend, graph, core and the Dockerfile parser,
// shell and instructions packages.
package convert
