// Package imagestore keeps the daemon's named local images: the images
// `kiln build -t app` and `kiln image import` produce, which `kiln images`
// lists and which a later `FROM app` finds without a registry.
//
// An image is a name (a tag, normalised as Docker does:
// "my-app" → "docker.io/library/my-app:latest") pointing at a manifest or an
// index in the content store. The records live in the daemon's bbolt
// database (metadata.db) in the bucket "images.v1"; the blobs themselves are
// in the content store, which this package only reads.
//
// # Garbage collection
//
// The content store (containerd's local store without a label store) keeps
// no labels, so images do not mark their blobs there. Instead the image
// records are the gc roots: Referenced returns every blob that a stored
// image needs (each target and the indexes, manifests, configs and layers
// reachable from it), and gc must keep those. Names are shown to users in
// Docker's familiar form (FamiliarName: "my-app:latest").
//
// This package imports content, registry and core/errdefs from Kiln.
package imagestore
