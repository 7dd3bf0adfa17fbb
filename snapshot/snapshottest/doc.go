// Package snapshottest is the conformance suite every snapshotter Kiln
// uses must pass (overlayfs and native today): lifecycle, parent chains,
// file visibility through a chain, whiteouts, removal rules, usage, walk,
// labels, and a 120-layer chain that must still mount.
//
// It mounts snapshots, so it needs root; Run skips when not root.
package snapshottest
