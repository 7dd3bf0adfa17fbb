package snapshot_test

import (
	"errors"
	"os"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/log"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/snapshot/snapshottest"
)

func TestMain(m *testing.M) {
	// containerd logs through a process-wide logrus logger.
	_ = log.SetLevel("error")
	os.Exit(m.Run())
}

func requireRoot(t *testing.T) {
	t.Helper()
	testroot.Require(t, "mounts snapshots")
}

func newKind(kind string) snapshottest.NewFunc {
	return func(t *testing.T, root string) snapshots.Snapshotter {
		t.Helper()
		sn, err := snapshot.New(root, kind)
		if kind == snapshot.KindOverlay && errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Skipf("overlayfs does not mount here: %v", err)
		}
		if err != nil {
			t.Fatalf("New(%s): %v", kind, err)
		}
		if sn.Kind() != kind {
			t.Fatalf("New(%s).Kind() = %s", kind, sn.Kind())
		}
		return sn
	}
}

func TestConformance(t *testing.T) {
	for _, kind := range []string{snapshot.KindOverlay, snapshot.KindNative} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			snapshottest.Run(t, newKind(kind))
		})
	}
}
