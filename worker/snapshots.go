package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/snapshot"
)

// Snapshot names and keys this package makes. Committed results are named
// resultPrefix+random; base image layers keep the chain-ID names the image
// puller gives them. Active snapshots left by a crash are removed at start.
const (
	resultPrefix = "kiln-r-"
	activePrefix = "kiln-a-"
	viewPrefix   = "kiln-v-"
)

// Snapshots hands out refs to committed snapshots and makes new ones. It
// counts the live handles of each snapshot so that gc leaves them alone.
type Snapshots struct {
	sn *snapshot.Snapshotter

	mu     sync.Mutex
	leases map[string]int
}

var _ ops.Snapshots = (*Snapshots)(nil)

// NewSnapshots wraps sn and removes the active and view snapshots a crashed
// daemon left behind.
func NewSnapshots(ctx context.Context, sn *snapshot.Snapshotter) (*Snapshots, error) {
	s := &Snapshots{sn: sn, leases: map[string]int{}}
	var stale []string
	err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindCommitted && (strings.HasPrefix(info.Name, activePrefix) || strings.HasPrefix(info.Name, viewPrefix)) {
			stale = append(stale, info.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	for _, k := range stale {
		if err := sn.Remove(ctx, k); err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("remove leftover snapshot %s: %w", k, err)
		}
	}
	return s, nil
}

// Snapshotter returns the underlying snapshotter.
func (s *Snapshots) Snapshotter() *snapshot.Snapshotter { return s.sn }

// InUse reports whether a handle on the committed snapshot name is live.
func (s *Snapshots) InUse(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases[name] > 0
}

// Load returns a handle on the committed snapshot name.
func (s *Snapshots) Load(ctx context.Context, name string) (*SnapshotRef, error) {
	info, err := s.sn.Stat(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("load result %s: %w", name, err)
	}
	if info.Kind != snapshots.KindCommitted {
		return nil, errdefs.NotFoundf("load result %s: not a committed snapshot", name)
	}
	return s.ref(name), nil
}

func (s *Snapshots) ref(name string) *SnapshotRef {
	s.mu.Lock()
	s.leases[name]++
	s.mu.Unlock()
	return &SnapshotRef{s: s, name: name}
}

// New implements ops.Snapshots.
func (s *Snapshots) New(ctx context.Context, parent ops.Ref, description string) (ops.Active, error) {
	parentName := ""
	if parent != nil {
		p, ok := parent.(*SnapshotRef)
		if !ok {
			return nil, errdefs.WithClass(errdefs.ErrInvalidArgument, fmt.Errorf("%s: a %T cannot be a parent filesystem", description, parent))
		}
		parentName = p.name
	}
	key := activePrefix + randomID()
	mounts, err := s.sn.Prepare(ctx, key, parentName)
	if err != nil {
		return nil, fmt.Errorf("%s: prepare snapshot: %w", description, err)
	}
	a := &Active{s: s, key: key, mounts: mounts}
	if s.sn.Kind() == snapshot.KindOverlay {
		if a.upper, err = s.sn.UpperDir(ctx, key); err != nil {
			_ = s.sn.Remove(context.WithoutCancel(ctx), key)
			return nil, err
		}
	}
	return a, nil
}

// SnapshotRef is a handle on a committed snapshot.
type SnapshotRef struct {
	s    *Snapshots
	name string
	once sync.Once
}

var _ ops.Mountable = (*SnapshotRef)(nil)

// ID implements ops.Ref: the snapshot name.
func (r *SnapshotRef) ID() string { return r.name }

// Release implements ops.Ref.
func (r *SnapshotRef) Release(context.Context) error {
	r.once.Do(func() {
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		if r.s.leases[r.name]--; r.s.leases[r.name] <= 0 {
			delete(r.s.leases, r.name)
		}
	})
	return nil
}

// Mount implements ops.Mountable with a read-only view of the snapshot.
func (r *SnapshotRef) Mount(ctx context.Context) ([]mount.Mount, func() error, error) {
	key := viewPrefix + randomID()
	mounts, err := r.s.sn.View(ctx, key, r.name)
	if err != nil {
		return nil, nil, fmt.Errorf("view %s: %w", r.name, err)
	}
	return mounts, func() error { return r.s.sn.Remove(context.Background(), key) }, nil
}

// WithDir mounts a read-only view of the snapshot for fn.
func (r *SnapshotRef) WithDir(ctx context.Context, fn func(dir string) error) error {
	return snapshot.WithView(ctx, r.s.sn, r.name, fn)
}

// Active is a writable snapshot being built; it implements ops.Active.
type Active struct {
	s      *Snapshots
	key    string
	upper  string
	mounts []mount.Mount

	mu   sync.Mutex
	done bool
}

var _ ops.Active = (*Active)(nil)

// Mounts implements ops.Active.
func (a *Active) Mounts() []mount.Mount { return a.mounts }

// UpperDir implements ops.Active.
func (a *Active) UpperDir() string { return a.upper }

// Key returns the snapshot key (for snapshot.WithActive).
func (a *Active) Key() string { return a.key }

// Commit implements ops.Active.
func (a *Active) Commit(ctx context.Context) (ops.Ref, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return nil, errors.New("commit: snapshot already committed or discarded")
	}
	name := resultPrefix + randomID()
	if err := a.s.sn.Commit(ctx, name, a.key); err != nil {
		return nil, fmt.Errorf("commit snapshot: %w", err)
	}
	a.done = true
	return a.s.ref(name), nil
}

// Discard implements ops.Active.
func (a *Active) Discard(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return nil
	}
	a.done = true
	if err := a.s.sn.Remove(context.WithoutCancel(ctx), a.key); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("discard snapshot %s: %w", a.key, err)
	}
	return nil
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
