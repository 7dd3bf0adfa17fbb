package frontend

import (
	"context"
	"io"
	"io/fs"
	"time"

	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/graph"
)

// Bridge is what a frontend that builds while it converts (a gateway
// frontend: a container that asks for graphs to be solved and reads their
// results) needs from the engine. The engine passes one per build in
// Request.Bridge; every call works within that build: its client session
// (local contexts, secrets, ssh), its progress, its cache settings and its
// entitlements.
//
// A gateway frontend typically solves the build context's Dockerfile,
// reads it, converts it, solves stages to read files from them, and
// returns the final graph:
//
//	ref, err := req.Bridge.Solve(ctx, dockerfileVertex)
//	if err != nil { ... }
//	defer ref.Release(ctx)
//	data, err := ref.ReadFile(ctx, "/Dockerfile", 0, -1)
type Bridge interface {
	// Solve builds the graph of root (nil: an empty filesystem) and
	// returns its result, which the caller must release.
	Solve(ctx context.Context, root *graph.Vertex) (Ref, error)
	// Run runs p in a container whose root filesystem is a throw-away
	// writable layer on root, and waits for it. It takes no execution
	// slot (it may wait on the steps it asks for). A non-zero exit
	// status is an error.
	Run(ctx context.Context, root Ref, p Process) error
}

// Ref is a built filesystem a frontend reads. Paths are absolute; they and
// the symbolic links on the way resolve inside the filesystem, as in a
// container whose root it is, so reads never leave it.
type Ref interface {
	// ReadFile returns up to limit bytes (limit < 0: all) of the regular
	// file at path, from offset.
	ReadFile(ctx context.Context, path string, offset, limit int64) ([]byte, error)
	// ReadDir lists the directory at path, sorted by name.
	ReadDir(ctx context.Context, path string) ([]FileInfo, error)
	// StatFile describes the entry at path (a final link is not
	// followed).
	StatFile(ctx context.Context, path string) (FileInfo, error)
	// Release frees the result; the Ref must not be used after.
	Release(ctx context.Context) error
}

// FileInfo describes one entry of a Ref.
type FileInfo struct {
	Name     string // the base name (ReadDir) or the path asked for (StatFile)
	Mode     fs.FileMode
	UID, GID uint32
	Size     int64
	ModTime  time.Time
	Linkname string // a symbolic link's target
	// Devmajor and Devminor are a device node's numbers.
	Devmajor, Devminor uint32
}

// Process is what Bridge.Run runs.
type Process struct {
	Args []string
	Env  []string
	Cwd  string // "/" if empty
	User string // "" is root
	// Network is the container's network; "" is the daemon's default.
	Network sandbox.NetMode
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}
