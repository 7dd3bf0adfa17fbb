package http

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/snapshot"
)

// testSnapshots is an ops.Snapshots straight over a real snapshotter, for
// Exec tests (the worker's implementation imports this package).
type testSnapshots struct {
	sn *snapshot.Snapshotter
	n  atomic.Int64
}

// newSnapshots returns real snapshots of kind (root only).
func newSnapshots(t *testing.T, kind string) *testSnapshots {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("snapshots need root")
	}
	if testing.Short() {
		t.Skip("slow: writes snapshots")
	}
	sn, err := snapshot.New(t.TempDir(), kind)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	return &testSnapshots{sn: sn}
}

func (s *testSnapshots) New(ctx context.Context, parent ops.Ref, _ string) (ops.Active, error) {
	if parent != nil {
		return nil, errors.New("test snapshots: parents are not supported")
	}
	key := fmt.Sprintf("active-%d", s.n.Add(1))
	mounts, err := s.sn.Prepare(ctx, key, "")
	if err != nil {
		return nil, err
	}
	a := &testActive{s: s, key: key, mounts: mounts}
	if s.sn.Kind() == snapshot.KindOverlay {
		if a.upper, err = s.sn.UpperDir(ctx, key); err != nil {
			return nil, err
		}
	}
	return a, nil
}

type testActive struct {
	s      *testSnapshots
	key    string
	upper  string
	mounts []mount.Mount
	done   bool
}

func (a *testActive) Mounts() []mount.Mount { return a.mounts }
func (a *testActive) UpperDir() string      { return a.upper }

func (a *testActive) Commit(ctx context.Context) (ops.Ref, error) {
	name := fmt.Sprintf("result-%d", a.s.n.Add(1))
	if err := a.s.sn.Commit(ctx, name, a.key); err != nil {
		return nil, err
	}
	a.done = true
	return &testRef{s: a.s, name: name}, nil
}

func (a *testActive) Discard(ctx context.Context) error {
	if a.done {
		return nil
	}
	a.done = true
	return a.s.sn.Remove(ctx, a.key)
}

type testRef struct {
	s    *testSnapshots
	name string
}

func (r *testRef) ID() string                    { return r.name }
func (r *testRef) Release(context.Context) error { return nil }

// withDir calls fn with a read-only view of the result.
func (r *testRef) withDir(fn func(dir string) error) error {
	return snapshot.WithView(context.Background(), r.s.sn, r.name, fn)
}
