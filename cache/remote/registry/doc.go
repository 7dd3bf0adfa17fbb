// Package registry keeps build caches in a container registry: a cache
// manifest at a reference (--cache-to/--cache-from type=registry), inline
// cache in an image's config (--cache-from type=registry,ref=IMAGE), and
// a repository as a shared blob store ([[cache.blob]] type = "registry").
//
// A cache manifest is an OCI image manifest whose config blob
// (remote.ConfigMediaType) lists the records and whose layers are the
// records' blobs, stored in the same repository; artifactType is
// remote.ArtifactType. Registries have no compare-and-swap: an export
// reads the manifest, merges its records in, pushes, and checks a moment
// later that a concurrent writer did not drop them (see docs/dev/cache.md).
//
// This package imports cache/remote, Kiln's registry resolver and
// go-containerregistry.
package registry
