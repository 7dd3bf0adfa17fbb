package worker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/snapshot"
)

func newSnapshots(t *testing.T, kind string) *Snapshots {
	t.Helper()
	testroot.Require(t, "mounts snapshots")
	sn, err := snapshot.New(t.TempDir(), kind)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	s, err := NewSnapshots(context.Background(), sn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t *testing.T, a *Active, name, data string) {
	t.Helper()
	err := mount.WithTempMount(context.Background(), a.Mounts(), func(dir string) error {
		return os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSnapshots(t *testing.T) {
	for _, kind := range []string{snapshot.KindOverlay, snapshot.KindNative} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			s := newSnapshots(t, kind)
			a, err := s.New(ctx, nil, "base")
			if err != nil {
				t.Fatal(err)
			}
			if (a.UpperDir() != "") != (kind == snapshot.KindOverlay) {
				t.Errorf("UpperDir() = %q for %s", a.UpperDir(), kind)
			}
			writeFile(t, a.(*Active), "a", "A")
			base, err := a.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Discard(ctx); err != nil {
				t.Errorf("Discard after Commit = %v, want nil", err)
			}
			if !s.InUse(base.ID()) {
				t.Errorf("committed ref not leased")
			}
			b, err := s.New(ctx, base, "child")
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, b.(*Active), "b", "B")
			child, err := b.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := s.Load(ctx, child.ID())
			if err != nil {
				t.Fatal(err)
			}
			err = loaded.WithDir(ctx, func(dir string) error {
				for _, f := range []string{"a", "b"} {
					if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("child view: %v", err)
			}
			for _, r := range []interface{ Release(context.Context) error }{base, child, loaded, loaded} {
				_ = r.Release(ctx)
			}
			if s.InUse(base.ID()) || s.InUse(child.ID()) {
				t.Errorf("leases not released")
			}
			if _, err := s.Load(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("Load missing = %v, want not found", err)
			}
			// A discarded snapshot is gone.
			c, err := s.New(ctx, nil, "x")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Discard(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.sn.Stat(ctx, c.(*Active).Key()); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("discarded snapshot still there: %v", err)
			}
		})
	}
}

func TestLeftoversRemoved(t *testing.T) {
	testroot.Require(t, "mounts snapshots")
	ctx := context.Background()
	root := t.TempDir()
	sn, err := snapshot.New(root, snapshot.KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSnapshots(ctx, sn)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.New(ctx, nil, "crash")
	if err != nil {
		t.Fatal(err)
	}
	key := a.(*Active).Key()
	// Simulate a crash: reopen without discarding.
	sn.Close()
	sn, err = snapshot.New(root, snapshot.KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	if _, err := NewSnapshots(ctx, sn); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Stat(ctx, key); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("active snapshot left by a crash survived restart: %v", err)
	}
}
