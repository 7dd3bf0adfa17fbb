// Package labels names the labels Kiln puts on snapshots and content so
// that packages agree on them without importing each other.
package labels

// Snapshot labels for layers. A committed snapshot whose layer tar is known
// carries its diff ID, and for each compression whose blob exists in the
// content store, the blob's descriptor, so exporters reuse blobs instead of
// recompressing and pulled base layers are pushed as they came.
const (
	// DiffID is the digest of the snapshot's uncompressed layer tar.
	DiffID = "kiln.io/layer.diffid"
	// blobPrefix + compression ("gzip", "zstd", "uncompressed") holds
	// "<media type>|<digest>|<size>" of the blob in the content store.
	blobPrefix = "kiln.io/layer.blob."
	// Source is the image reference a base layer was pulled from, for
	// cross-repository mounts on push.
	Source = "kiln.io/layer.source"
)

// Blob returns the label holding the blob descriptor for a compression.
func Blob(compression string) string { return blobPrefix + compression }

// Content labels protect blobs from gc: containerd's gc convention.
const (
	// GCRootPrefix marks content referenced by a named image.
	GCRoot = "containerd.io/gc.root"
)
