// Package image is the image source: it resolves image references to
// pinned manifests and configs (the Dockerfile frontend's ImageResolver),
// pulls images into the content store and unpacks their layers into
// snapshots (the ops.Op of a graph.ImageSource), and imports images and
// image archives into the local image store.
//
// # Resolving
//
// A Puller resolves a reference in this order: a tag in the local image
// store (an image built or imported earlier, as Docker's `FROM app` finds
// it); a digest whose manifest (and config) the content store has, without
// the registry; else the registry, through the daemon's registry.Resolver
// (mirrors, credentials). An index resolves to the manifest of the wanted
// platform; errors name the platforms the index has.
//
// # Pulling
//
// Pull downloads the layer blobs the content store lacks, several at a
// time, each verified, and unpacks them in order on their parents as soon
// as each is downloaded. Snapshots are named by chain ID (image-spec
// identity), so a layer shared by two images is unpacked once, and a
// layer whose snapshot exists is not even downloaded. Work on one blob or
// one chain ID runs once however many builds ask at the same moment; it
// runs detached from the build that started it and stops only when every
// build waiting for it has gone.
//
// Unpacked snapshots are labelled (core/labels) with the layer's diffID,
// its blob descriptor per compression and the repository it came from, so
// exporters reuse base layers' blobs and can cross-mount them on push.
//
// # Credentials
//
// Puller.WithCredentials derives a per-build view that asks a build's
// client for credentials (cached per host for the view's life;
// SessionCredentials adapts a build session); the daemon's own credentials
// come from its registry configuration.
//
// This package imports content, snapshot, imagestore, registry, ops,
// graph, session, frontend (for its resolver types), progress and core;
// never the worker or the solver.
package image
