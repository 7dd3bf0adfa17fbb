package local

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
)

// ClientIdentifier is implemented by sessions that know which client they
// serve (the BuildRequest's client_id). The store keys its copies by it, so
// that builds from the same client and directory share one copy.
type ClientIdentifier interface {
	ClientID() string
}

// Option configures an Op.
type Option func(*opConfig)

type opConfig struct {
	clientID string
}

// WithClientID sets the client id the copy is kept under, overriding what
// the session says (ClientIdentifier).
func WithClientID(id string) Option {
	return func(c *opConfig) { c.clientID = id }
}

// Op is the ops.Op of a graph.LocalSource: it syncs the client's directory
// into the store and returns it as a *Ref. Its cache key covers the op's
// definition only (name and patterns); it is content-keyed, so each step
// that reads it adds the digest of what it reads (Ref.Checksum).
type Op struct {
	store  *Store
	vertex digest.Digest
	src    graph.LocalSource
	sess   session.Session
	key    Key
	dgst   digest.Digest
}

var (
	_ ops.Op           = (*Op)(nil)
	_ ops.ContentKeyed = (*Op)(nil)
)

// NewOp returns the op for vertex v, a local source, syncing through sess.
// The copy is kept under (client id, v's SharedKeyHint, v's name); without a
// client id (no option, the session does not implement ClientIdentifier)
// each Exec syncs into a private copy that is removed when released, so
// nothing is reused across builds.
func NewOp(store *Store, v *graph.Vertex, sess session.Session, opts ...Option) (*Op, error) {
	if store == nil {
		return nil, errdefs.Invalidf("local source: no context store")
	}
	if v == nil || v.Op.Source == nil || v.Op.Source.Local == nil {
		return nil, errdefs.Invalidf("local source: vertex is not a local source")
	}
	src := *v.Op.Source.Local
	if src.Name == "" {
		return nil, errdefs.Invalidf("local source: no name")
	}
	var cfg opConfig
	for _, o := range opts {
		o(&cfg)
	}
	clientID := cfg.clientID
	if ci, ok := sess.(ClientIdentifier); ok && clientID == "" {
		clientID = ci.ClientID()
	}
	return &Op{
		store: store, vertex: v.Digest(), src: src, sess: sess,
		key:  Key{ClientID: clientID, Path: src.SharedKeyHint, Name: src.Name},
		dgst: definitionDigest(src),
	}, nil
}

// definitionDigest covers what selects the files (name and patterns) but
// not SharedKeyHint: the same Dockerfile built from another checkout of
// the same files hits the cache.
func definitionDigest(src graph.LocalSource) digest.Digest {
	b, _ := json.Marshal(struct {
		Name    string   `json:"name"`
		Include []string `json:"include,omitempty"`
		Exclude []string `json:"exclude,omitempty"`
		Follow  []string `json:"follow,omitempty"`
	}{src.Name, src.IncludePatterns, src.ExcludePatterns, src.FollowPaths}) // plain strings: cannot fail
	h := sha256.New()
	h.Write([]byte("kiln/local/v1\x00"))
	h.Write(b)
	return digest.NewDigest(digest.SHA256, h)
}

// Key returns the store key the op syncs under.
func (o *Op) Key() Key { return o.key }

// ContentKeyed reports true: the result depends on the client's files.
func (o *Op) ContentKeyed() bool { return true }

// CacheMap returns the definition digest; it does not touch the client.
func (o *Op) CacheMap(context.Context) (*ops.CacheMap, error) {
	return &ops.CacheMap{Digest: o.dgst}, nil
}

// Exec syncs the directory and returns a *Ref on the store's copy.
func (o *Op) Exec(ctx context.Context, inputs []ops.Ref) (ops.Ref, error) {
	if len(inputs) != 0 {
		return nil, errdefs.Invalidf("local source %s: takes no inputs, got %d", o.src.Name, len(inputs))
	}
	if o.sess == nil {
		return nil, errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("local source %s: no client session to sync from", o.src.Name))
	}
	opts := session.SyncOptions{
		IncludePatterns: o.src.IncludePatterns,
		ExcludePatterns: o.src.ExcludePatterns,
		FollowPaths:     o.src.FollowPaths,
	}
	start := time.Now()
	var st session.SyncStats
	ref, err := o.store.Sync(ctx, o.key, func(ctx context.Context, dir string) (session.SyncStats, error) {
		var err error
		st, err = o.sess.SyncDir(ctx, o.src.Name, opts, dir)
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("transfer %s: %w", o.src.Name, err)
	}
	msg := fmt.Sprintf("transferred %s in %d of %d files", humanBytes(st.Bytes), st.Transferred, st.Files)
	if st.Removed > 0 {
		msg += fmt.Sprintf(", removed %d", st.Removed)
	}
	msg += fmt.Sprintf(" (%.2fs)\n", time.Since(start).Seconds())
	progress.FromContext(ctx).Write(progress.Event{Log: &progress.Log{
		Vertex: o.vertex, Stream: 1, Data: []byte(msg), Time: time.Now(),
	}})
	return ref, nil
}

// humanBytes formats n as BuildKit's progress does ("2.05kB", "1.20MB").
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.2f%s", f, u)
		}
	}
	return fmt.Sprintf("%.2fPB", f/unit)
}
