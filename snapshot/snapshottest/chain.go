package snapshottest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
)

// ChainLength is the depth of the long-chain test: past 100 layers, where
// overlay's lowerdir option no longer fits in one page unless shortened.
const ChainLength = 120

func testChain120(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) {
	if testing.Short() {
		t.Skip("120-layer chain skipped in -short mode")
	}
	want := Tree{"layers": "dir/"}
	parent := ""
	for i := range ChainLength {
		name := fmt.Sprintf("layer-%03d", i)
		layer(ctx, t, sn, name, parent, func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, "layers"), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "layers", name), []byte(name), 0o644); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "top"), []byte(name), 0o644)
		})
		want["layers/"+name] = name
		want["top"] = name
		parent = name
	}

	// The view of the top layer stacks all 120; for overlay its options
	// are longer than the kernel takes in one mount call.
	mounts, err := sn.View(ctx, "chain-view", parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if m.Type != "overlay" {
			continue
		}
		size := len(strings.Join(m.Options, ","))
		if size <= os.Getpagesize() {
			t.Errorf("overlay options of a %d-layer view are %d bytes; the test wants them over a page (%d) to exercise shortening", ChainLength, size, os.Getpagesize())
		}
	}
	if err := sn.Remove(ctx, "chain-view"); err != nil {
		t.Fatal(err)
	}
	checkTree(ctx, t, sn, parent, want)
}
