package snapshot_test

import (
	"context"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/testsuite"

	"github.com/kiln-build/kiln/snapshot"
)

// TestContainerdSuite runs containerd's own snapshotter conformance suite
// (core/snapshots/testsuite) against Kiln's Snapshotter of each kind, on
// top of Kiln's suite in snapshottest.
func TestContainerdSuite(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("containerd's suite mounts many layers; skipped in -short mode")
	}
	for _, kind := range []string{snapshot.KindOverlay, snapshot.KindNative} {
		t.Run(kind, func(t *testing.T) {
			testsuite.SnapshotterSuite(t, kind, func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
				sn, err := snapshot.New(root, kind)
				if err != nil {
					return nil, nil, err
				}
				return sn, sn.Close, nil
			})
		})
	}
}
