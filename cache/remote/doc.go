// Package remote shares build results beyond one daemon: the daemon-wide
// shared cache (Shared: an Index of records, in Redis, over a BlobStore
// that many daemons use at once) and the per-build caches of --cache-from
// and --cache-to (ManifestCache and ManifestExporter over a registry
// reference or a client's OCI layout, Inline in the exported image's
// config). It implements the cache package's RemoteCache and Exporter.
//
// Remote records (Record) hold digests, sizes and times only. Hits are
// imported lazily by the Importer: layer blobs are checked against their
// digests and every layer's tar against its diffID before its snapshot is
// committed, so a missing or corrupt blob is a miss, never a wrong result.
// docs/dev/cache.md describes the design.
//
// This package imports cache, content, exporter (for Layers), snapshot,
// registry and session; it never imports the solver. Implementations that
// need a client library live below it: redis/ (the index), registry/,
// local/.
package remote
