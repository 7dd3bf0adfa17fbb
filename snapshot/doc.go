// Package snapshot owns the filesystem side of build results: layered
// snapshots, the layer tar of one snapshot, and unpacking layer tars.
//
// # Snapshots
//
// New opens containerd's overlayfs snapshotter, or its native snapshotter
// (a full copy per layer) where overlayfs cannot mount, under
// <root>/snapshots/<kind>. Both have containerd's semantics
// (core/snapshots.Snapshotter): a key names an active (writable) or view
// (read-only) snapshot, a name names a committed one, and every snapshot
// but the bottom one has a committed parent:
//
//	sn.Prepare(ctx, "build-1", "")           // active, empty
//	WithActive(ctx, sn, "build-1", write)    // mount, fill, unmount
//	sn.Commit(ctx, "layer-1", "build-1")     // now read-only, named
//	sn.Prepare(ctx, "build-2", "layer-1")    // next layer on top
//
// WithView and WithActive mount a snapshot on a temporary directory under
// <root>/snapshots/mnt for the length of a callback and always unmount it.
// Long parent chains mount because containerd's mount package shortens the
// overlay lowerdir option when it would pass the kernel's one-page limit.
//
// # Layers
//
// Diff writes the uncompressed OCI layer tar of a snapshot against its
// parent. On overlayfs it reads only the snapshot's upper directory and
// asks the parent about the paths found there (it never walks the parent's
// tree), turning overlay whiteouts (0/0 character devices) and opaque
// directories (trusted.overlay.opaque=y) into OCI .wh.<name> and
// .wh..wh..opq entries. On the native snapshotter it compares the two
// trees. Apply unpacks a layer tar onto a directory (plain, or an overlay
// upper directory), and Unpack does prepare, apply and commit under the
// layer's chain ID for the image puller. No tar entry can write outside the
// directory it is applied to. ViewLayers and LayerFile find, for a
// read-only overlay view, the layer directory that holds a path (to
// hard-link a layer file, or to tell which layer a file comes from).
//
// This package imports no other Kiln package except core/errdefs.
package snapshot
