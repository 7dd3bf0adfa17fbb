package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testroot"
)

// TestNewRecoversFromCrash leaves what a killed daemon would leave (a
// view mounted under mnt/, temporary snapshots) and checks that the next
// New cleans it up without touching committed snapshots.
func TestNewRecoversFromCrash(t *testing.T) {
	testroot.Require(t, "mounts snapshots")
	for _, kind := range []string{KindOverlay, KindNative} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			root := t.TempDir()
			sn, err := New(root, kind)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sn.Prepare(ctx, "work", ""); err != nil {
				t.Fatal(err)
			}
			if err := WithActive(ctx, sn, "work", func(dir string) error {
				return os.WriteFile(filepath.Join(dir, "f"), []byte("kept"), 0o644)
			}); err != nil {
				t.Fatal(err)
			}
			if err := sn.Commit(ctx, "base", "work"); err != nil {
				t.Fatal(err)
			}
			// A crash in the middle of WithView: mounted, never cleaned.
			viewKey := tempKey("view")
			mounts, err := sn.View(ctx, viewKey, "base")
			if err != nil {
				t.Fatal(err)
			}
			target, err := os.MkdirTemp(sn.mountRoot(), "m-")
			if err != nil {
				t.Fatal(err)
			}
			if err := mount.All(mounts, target); err != nil {
				t.Fatal(err)
			}
			// And in the middle of Unpack: an active temporary snapshot.
			if _, err := sn.Prepare(ctx, tempKey("unpack"), "base"); err != nil {
				t.Fatal(err)
			}
			if err := sn.Close(); err != nil {
				t.Fatal(err)
			}

			sn, err = New(root, kind)
			if err != nil {
				t.Fatalf("New after a crash: %v", err)
			}
			defer sn.Close()
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				_ = mount.UnmountAll(target, 0)
				t.Errorf("stale mount point %s is still there (stat: %v)", target, err)
			}
			var names []string
			if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
				names = append(names, info.Name)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(names) != 1 || names[0] != "base" {
				t.Errorf("snapshots after recovery = %v; want only base", names)
			}
			if err := WithView(ctx, sn, "base", func(dir string) error {
				b, err := os.ReadFile(filepath.Join(dir, "f"))
				if err != nil || string(b) != "kept" {
					t.Errorf("base/f = %q, %v", b, err)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNewKinds(t *testing.T) {
	t.Parallel()
	_, err := New(t.TempDir(), "zfs")
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("New with an unknown kind = %v; want invalid argument", err)
	}
	if _, err := New("", KindNative); !errdefs.IsInvalidArgument(err) {
		t.Errorf("New with no root = %v; want invalid argument", err)
	}
	root := t.TempDir()
	sn, err := New(root, KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	want := KindNative
	if probeOverlay(t.TempDir()) == nil {
		want = KindOverlay
	}
	if sn.Kind() != want {
		t.Errorf("auto chose %s; overlay probe says %s", sn.Kind(), want)
	}
	if _, err := os.Stat(filepath.Join(root, "snapshots", want, "metadata.db")); err != nil {
		t.Errorf("snapshotter data not under <root>/snapshots/%s: %v", want, err)
	}
}
