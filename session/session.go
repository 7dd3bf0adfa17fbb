// Package session defines what a build may ask of its client while it runs:
// the files of a local directory, secrets, an ssh agent, registry
// credentials. The daemon implements Session over the Build stream; tests
// implement it in memory.
//
// This package imports only core.
package session

import (
	"context"
	"net"
)

// Session is one build's channel back to its client. Every method may be
// called concurrently. A method the client cannot answer returns an error in
// the errdefs.ErrNotFound class (secret or agent not given) or
// errdefs.ErrUnavailable (client gone).
type Session interface {
	// ID identifies the build (its ref).
	ID() string
	// SyncDir makes dest mirror the client's directory name, filtered by
	// opts. dest may hold an earlier copy: only files whose metadata
	// differ are transferred. Files in dest are only ever replaced by
	// rename, never modified in place (snapshots may hard-link them).
	SyncDir(ctx context.Context, name string, opts SyncOptions, dest string) (SyncStats, error)
	// Secret returns the value of the client's secret id.
	Secret(ctx context.Context, id string) ([]byte, error)
	// DialSSH opens a connection to the client's ssh agent id ("default"
	// unless named).
	DialSSH(ctx context.Context, id string) (net.Conn, error)
	// Credentials returns the client's registry credentials for host, or
	// ok=false when it has none.
	Credentials(ctx context.Context, host string) (c Credential, ok bool, err error)
}

// SyncOptions selects the files of a sync.
type SyncOptions struct {
	IncludePatterns []string
	ExcludePatterns []string // .dockerignore syntax
	FollowPaths     []string
}

// SyncStats reports what a sync did.
type SyncStats struct {
	Files       int   // entries in the directory after the sync
	Transferred int   // files whose content was sent
	Bytes       int64 // content bytes sent
	Removed     int   // entries removed from dest
	// Unchanged reports that dest already mirrored the client: the sync
	// created, replaced, removed and re-timed nothing. A digest of dest
	// taken before the sync still holds. False when unknown.
	Unchanged bool
}

// Credential is a registry login.
type Credential struct {
	Username      string
	Secret        string
	IdentityToken string
}
