package testutil

import (
	"context"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/snapshot"
)

// BusyboxSnapshot unpacks the busybox test image's layer into sn and
// returns the committed snapshot's name (its chain ID). Tests of steps that
// run commands use it as their root filesystem.
func BusyboxSnapshot(t testing.TB, sn snapshots.Snapshotter) string {
	t.Helper()
	img := BusyboxImage(t, HostPlatform())
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	parent := ""
	for _, l := range layers {
		parent = unpackLayer(t, sn, parent, l)
	}
	return parent
}

func unpackLayer(t testing.TB, sn snapshots.Snapshotter, parent string, l v1.Layer) string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	name, err := snapshot.Unpack(context.Background(), sn, parent, rc)
	if err != nil {
		t.Fatalf("unpack busybox layer: %v", err)
	}
	return name
}
