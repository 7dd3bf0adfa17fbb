// Package layer makes the layer blobs of committed snapshots, for the
// exporters and for the remote caches.
//
// An image's layers are a snapshot's parent chain, bottom first: each
// committed snapshot is one layer, the changes it made on its parent. A
// Maker (one per daemon, shared by every export) makes each layer's blob
// once: it reuses the blob a snapshot's labels (core/labels) name, in the
// wanted compression or, unless Compression.Force is set, in any
// compression; otherwise it converts an existing blob of another
// compression (base layers keep their diffID) or diffs the snapshot
// (snapshot.Diff) and compresses the tar, stores the blob in the content
// store and labels the snapshot. An unchanged layer is thus never diffed
// or compressed twice, base image layers are exported byte-identical, and
// concurrent exports of one layer share the work.
//
// With BlobOptions.SourceDateEpoch the layers the build made are diffed
// with their timestamps clamped to it; such blobs are labelled under
// epoch-specific keys, apart from the unclamped ones.
//
//	m := layer.NewMaker(cs, sn)
//	chain, err := m.Chain(ctx, snapshotName)
//	b, err := m.Blob(ctx, chain[0], layer.BlobOptions{Compression: layer.Compression{Type: layer.Zstd}})
//	l := layer.ContentLayer(ctx, cs, b.Desc, b.DiffID) // a go-containerregistry view
//
// The package imports content, snapshot and core (and internal/flight,
// internal/iox); the exporter and cache/remote import it.
package layer
