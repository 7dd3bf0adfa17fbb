package ops

import (
	"context"

	"github.com/containerd/containerd/v2/core/mount"
)

// Mountable is a Ref the worker can mount: every result of a worker is one.
type Mountable interface {
	Ref
	// Mount returns read-only mounts of the filesystem. release undoes
	// whatever Mount set up (a temporary view); call it once the mounts
	// are unmounted.
	Mount(ctx context.Context) (mounts []mount.Mount, release func() error, err error)
}

// Dir is implemented by refs that are a plain directory on the daemon's
// filesystem (a synced build context). Readers may use the path directly
// instead of mounting; they must not modify it.
type Dir interface {
	Dir() string
}

// Snapshots makes new results. The worker implements it over its
// snapshotter; ops/exec and ops/file use it.
type Snapshots interface {
	// New prepares a writable filesystem on top of parent (nil for an
	// empty one). parent must be a ref of this worker that can be a
	// parent (a snapshot, not a context directory).
	New(ctx context.Context, parent Ref, description string) (Active, error)
}

// Active is a writable filesystem being built. Exactly one of Commit and
// Discard takes effect; calling Discard after Commit is a no-op, so
// `defer a.Discard(ctx)` is always safe.
type Active interface {
	// Mounts returns the mounts of the writable filesystem.
	Mounts() []mount.Mount
	// UpperDir returns the directory that receives the writes when the
	// snapshotter is overlay, or "" otherwise. Writing a new file there
	// directly (without mounting) is allowed: it shadows the parent's file
	// of the same path. Parent directories must be created with the
	// metadata the parent has for them.
	UpperDir() string
	// Commit makes the filesystem an immutable result.
	Commit(ctx context.Context) (Ref, error)
	// Discard removes the filesystem.
	Discard(ctx context.Context) error
}
