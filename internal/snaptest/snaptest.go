// Package snaptest gives tests real snapshots through the ops.Snapshots
// interface without the worker (source packages the worker imports use it).
package snaptest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/snapshot"
)

// Snapshots is an ops.Snapshots straight over a real snapshotter, for
// the tests of packages the worker imports (which cannot use the worker's
// implementation). Parents are not supported.
type Snapshots struct {
	sn *snapshot.Snapshotter
	n  atomic.Int64
}

// New returns real snapshots of kind on a temporary root; it skips the
// test when not root or in -short mode.
func New(t *testing.T, kind string) *Snapshots {
	t.Helper()
	testroot.RequireSlow(t, "writes snapshots")
	sn, err := snapshot.New(t.TempDir(), kind)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	return &Snapshots{sn: sn}
}

// New implements ops.Snapshots.
func (s *Snapshots) New(ctx context.Context, parent ops.Ref, _ string) (ops.Active, error) {
	if parent != nil {
		return nil, errors.New("test snapshots: parents are not supported")
	}
	key := fmt.Sprintf("active-%d", s.n.Add(1))
	mounts, err := s.sn.Prepare(ctx, key, "")
	if err != nil {
		return nil, err
	}
	a := &Active{s: s, key: key, mounts: mounts}
	if s.sn.Kind() == snapshot.KindOverlay {
		if a.upper, err = s.sn.UpperDir(ctx, key); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Active is a writable snapshot of Snapshots.
type Active struct {
	s      *Snapshots
	key    string
	upper  string
	mounts []mount.Mount
	done   bool
}

// Mounts implements ops.Active.
func (a *Active) Mounts() []mount.Mount { return a.mounts }

// UpperDir implements ops.Active.
func (a *Active) UpperDir() string { return a.upper }

// Commit implements ops.Active.
func (a *Active) Commit(ctx context.Context) (ops.Ref, error) {
	name := fmt.Sprintf("result-%d", a.s.n.Add(1))
	if err := a.s.sn.Commit(ctx, name, a.key); err != nil {
		return nil, err
	}
	a.done = true
	return &Ref{s: a.s, name: name}, nil
}

// Discard implements ops.Active.
func (a *Active) Discard(ctx context.Context) error {
	if a.done {
		return nil
	}
	a.done = true
	return a.s.sn.Remove(ctx, a.key)
}

// Ref is a committed snapshot of Snapshots.
type Ref struct {
	s    *Snapshots
	name string
}

// ID implements ops.Ref.
func (r *Ref) ID() string { return r.name }

// Release implements ops.Ref.
func (r *Ref) Release(context.Context) error { return nil }

// WithDir calls fn with a read-only view of the result.
func (r *Ref) WithDir(fn func(dir string) error) error {
	return snapshot.WithView(context.Background(), r.s.sn, r.name, fn)
}
