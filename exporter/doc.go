// Package exporter turns a build's result into its outputs: an image in the
// daemon's image store and/or a registry (type=image, type=registry), an
// OCI or docker-load tarball (type=oci, type=docker), or the final
// filesystem as a tar stream (type=local, type=tar).
//
// # Vocabulary
//
// A Result holds one Image per platform: the committed snapshot of the
// final filesystem (an ops.Ref whose ID is the snapshot name) and the
// image config the frontend computed. An Exporter writes one output;
// Multi fans one Result out to several exporters at once. A Factory makes
// the exporter of a buildx-style `--output type=...,key=value` from its
// attributes, turning the strings into the typed options of NewImage,
// NewTarball and NewFilesystem at this edge; nothing past the factory sees
// a string map. cmd/kilnd gives the engine its factories by type name.
//
//	layers := layer.NewMaker(cs, sn) // once per daemon
//	deps := exporter.Deps{Layers: layers, Images: images, Resolver: resolver.WithCredentials(creds)}
//	img, err := exporter.ImageFactory().New(map[string]string{"name": "app:1", "push": "true"}, deps)
//	ociDeps := exporter.Deps{Layers: layers, Writer: openClientStream}
//	oci, err := exporter.OCIFactory().New(map[string]string{"dest": "app.tar"}, ociDeps)
//	resp, err := exporter.Multi(img, oci).Export(ctx, exporter.Result{Images: perPlatform})
//	fmt.Println(resp[exporter.KeyDigest])
//
// # Layers
//
// An image's layers are the snapshot's parent chain, bottom first; the
// layer package's Maker (one per daemon, shared by every export and by
// the remote caches) makes each layer's blob once, so an unchanged layer
// is never diffed or compressed twice, base image layers are exported
// byte-identical, and concurrent exports of one layer (Multi, or two
// builds) share the work.
//
// With a SOURCE_DATE_EPOCH (Deps.SourceDateEpoch) the layers the build made
// are diffed with their timestamps clamped to it, and the config and
// history times too, so equal inputs give equal image digests. Such blobs
// are labelled under epoch-specific keys, apart from the unclamped ones.
//
// # Outputs
//
// Tarballs and filesystem streams go to the io.WriteCloser Deps.Writer
// opens (the engine connects it to the client); they are streamed, blob
// by blob as each layer becomes ready, never staged in a temporary file.
// Pushes go through the registry.Resolver: blobs the registry has are
// skipped, base layers from the same registry are mounted across
// repositories, uploads run in parallel and errors name the registry and
// its HTTP status.
//
// This package imports layer, content, snapshot, imagestore, registry, ops
// and core from Kiln. It must not import the frontend, the solver, the
// worker or the engine.
package exporter
