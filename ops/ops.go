// Package ops defines the solver's view of a build step: an Op tells the
// solver how to compute its cache key (CacheMap) and runs on its inputs'
// results (Exec). The worker makes an Op for each graph vertex; the
// implementations live in subpackages (exec/, file/, source/...).
//
// This package imports graph, session and core only; it must not import the
// solver, the cache or any implementation.
package ops

import (
	"context"

	digest "github.com/opencontainers/go-digest"
)

// Ref is the result of a step: an immutable filesystem (a committed snapshot,
// or a synced context directory). The holder must Release it.
type Ref interface {
	// ID names the result so that a cache record can find it again
	// (a snapshot name). Results that cannot be cached return "".
	ID() string
	Release(ctx context.Context) error
}

// Op is one step the solver can run.
type Op interface {
	// CacheMap describes the step's cache key. It is cheap unless the op
	// must resolve something first (a git ref, an HTTP resource).
	CacheMap(ctx context.Context) (*CacheMap, error)
	// Exec runs the step on its inputs' results (nil for an empty input)
	// and returns its result. It must not keep the inputs beyond its return
	// (the solver releases them).
	Exec(ctx context.Context, inputs []Ref) (Ref, error)
}

// CacheMap is the op's contribution to its cache key.
type CacheMap struct {
	// Digest is the op's definition digest, plus anything the op resolved.
	Digest digest.Digest
	// Deps, indexed like the inputs (it may be shorter), says which part
	// of each input the op reads. It is used only for content-keyed inputs
	// (see ContentKeyed).
	Deps []Dep
	// UsesExecutor is true for ops that run a container: they take one of
	// the max-parallelism execution slots while they run.
	UsesExecutor bool
	// AdmitsItself, with UsesExecutor, says the op's container asks for
	// its admission itself (Admit), once it is ready to start, rather
	// than the whole step waiting for it.
	AdmitsItself bool
}

// Dep is what an op reads from one input.
type Dep struct {
	// Selectors are the paths in the input the op reads (COPY sources,
	// possibly with wildcards); empty means the whole input.
	Selectors []string
	// Content, if set, computes the content digest of the selection. If
	// nil and the input is content-keyed, the solver uses the worker's
	// default checksum of the selectors.
	Content func(ctx context.Context, in Ref) (Content, error)
}

// Content is the content digest of part of a filesystem, with the digests of
// the files it covers (possibly truncated) so a miss can name what changed.
type Content struct {
	Digest digest.Digest `json:"digest"`
	// Files maps slash-separated paths to the digest of their content and
	// metadata (bytes, mode, type, link target, owner; never mtime).
	Files map[string]digest.Digest `json:"files,omitempty"`
	// Truncated is true when Files does not list every file.
	Truncated bool `json:"truncated,omitempty"`
}

// ContentKeyed is implemented by ops whose result is not determined by their
// cache key: local contexts. A step that reads such an input adds the
// content digest of what it reads to its own key; the result itself is
// never cached and never shared between builds.
type ContentKeyed interface {
	ContentKeyed() bool
}

// IsContentKeyed reports whether op implements ContentKeyed and says so.
func IsContentKeyed(op Op) bool {
	c, ok := op.(ContentKeyed)
	return ok && c.ContentKeyed()
}
