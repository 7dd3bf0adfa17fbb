package gc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	ctrcontent "github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
)

// The kinds of Item, as the API's UsageRecord.type names them (BuildKit's
// names where it has one).
const (
	TypeRecord     = "regular"
	TypeSnapshot   = "snapshot"
	TypeBlob       = "blob"
	TypeCacheMount = "exec.cachemount"
	TypeContext    = "source.local"
)

// DefaultGrace is Config.Grace when it is zero.
const DefaultGrace = 5 * time.Minute

// Images is what gc needs of the image store.
type Images interface {
	List(ctx context.Context) ([]imagestore.Image, error)
}

// Contexts is the kept build contexts (source/local's store, adapted by
// the engine).
type Contexts interface {
	Kept(ctx context.Context) ([]Context, error)
	Prune(ctx context.Context, unusedSince time.Time, removed func(Context) error) error
}

// Context is one kept build context.
type Context struct {
	// Dir is its directory under the store's root; its base name is the
	// item's ID.
	Dir string
	// Path is the context's directory on the client; Name its sync name
	// ("context" or "context:<name>").
	Path, Name string
	Size       int64
	LastUsed   time.Time
	InUse      bool
}

// CacheMounts is the RUN --mount=type=cache directories (ops/exec's,
// adapted by the engine). Remove must refuse, with
// errdefs.ErrFailedPrecondition, a directory a step took since List.
type CacheMounts interface {
	List(ctx context.Context) ([]CacheMount, error)
	Remove(ctx context.Context, name string) error
}

// CacheMount is one cache mount directory.
type CacheMount struct {
	// Name is what Remove takes.
	Name string
	// ID is the cache id it was made for ("" if unknown); Instance is N
	// for the Nth sharing=private extra directory, else 0.
	ID       string
	Instance int
	Size     int64
	Created  time.Time
	LastUsed time.Time
	InUse    bool
}

// Config is what a Collector looks at. Cache, Snapshotter, Content and
// Images are required.
type Config struct {
	Cache       cache.Store
	Snapshotter snapshots.Snapshotter
	Content     content.Store
	Images      Images
	// InUse reports whether a build or container holds the committed
	// snapshot name (worker.Snapshots.InUse). nil: none is.
	InUse func(name string) bool
	// Contexts, if set, are reported and pruned.
	Contexts Contexts
	// CacheMounts, if set, are reported and pruned.
	CacheMounts CacheMounts
	// Grace protects unreferenced snapshots and blobs this young while
	// something runs (default DefaultGrace).
	Grace  time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Collector reports and prunes. It is safe for concurrent use; prunes
// run one at a time.
type Collector struct {
	c  Config
	mu sync.Mutex
}

// New returns a Collector for c.
func New(c Config) (*Collector, error) {
	if c.Cache == nil || c.Snapshotter == nil || c.Content == nil || c.Images == nil {
		return nil, errdefs.Invalidf("gc: incomplete configuration")
	}
	if c.InUse == nil {
		c.InUse = func(string) bool { return false }
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{c: c}, nil
}

// Item is one thing the daemon stores.
type Item struct {
	ID   string
	Type string
	// Size is the bytes it takes on disk (for a record, its snapshot's own
	// usage; 0 when another record already counts that snapshot).
	Size int64
	// InUse: a build or container uses it now.
	InUse bool
	// Shared: something else needs it too (a stored image, another
	// record), so pruning it alone frees nothing.
	Shared      bool
	Created     time.Time
	LastUsed    time.Time
	Description string
	// Parents are the snapshots it sits on (for records and snapshots).
	Parents []string
}

// Reclaimable reports whether pruning the item would free its size.
func (it Item) Reclaimable() bool { return !it.InUse && !it.Shared }

// snap is one snapshot as scan found it.
type snap struct {
	info   snapshots.Info
	usage  int64
	inUse  bool // held, or not committed
	image  bool // a stored image is made of it
	record bool // a cache record names it
}

// state is everything one Usage or Prune looks at.
type state struct {
	now        time.Time
	snaps      map[string]*snap
	records    []cache.Record
	imageBlobs map[digest.Digest]string // → an image name, for messages
	mounts     []CacheMount
	busy       bool
}

// scan reads the cache records, the snapshots (with their usage) and the
// images' references.
func (c *Collector) scan(ctx context.Context) (*state, error) {
	st := &state{now: c.c.Now(), snaps: map[string]*snap{}}
	err := c.c.Snapshotter.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		st.snaps[info.Name] = &snap{info: info}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	for name, s := range st.snaps {
		if u, err := c.c.Snapshotter.Usage(ctx, name); err == nil {
			s.usage = u.Size
		} else if !errdefs.IsNotFound(err) && ctx.Err() == nil {
			c.c.Logger.Warn("snapshot usage", "snapshot", name, "error", err)
		}
		s.inUse = s.info.Kind != snapshots.KindCommitted || c.c.InUse(name)
		if s.inUse {
			st.busy = true
		}
	}
	if err := c.c.Cache.Walk(ctx, func(r cache.Record) error {
		st.records = append(st.records, r)
		if s := st.snaps[r.Result]; s != nil {
			s.record = true
		}
		return nil
	}); err != nil {
		return nil, err
	}
	sort.Slice(st.records, func(i, j int) bool { return st.records[i].Key < st.records[j].Key })

	roots, err := imageRoots(ctx, c.c.Images, c.c.Content)
	if err != nil {
		return nil, err
	}
	st.imageBlobs = roots.blobs
	for name := range roots.chainIDs {
		if s := st.snaps[name]; s != nil {
			s.image = true
		}
	}
	if ingests, err := c.c.Content.ListStatuses(ctx); err == nil && len(ingests) > 0 {
		st.busy = true
	}
	if c.c.CacheMounts != nil {
		if st.mounts, err = c.c.CacheMounts.List(ctx); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// Usage lists everything the daemon stores: records, snapshots no record
// names, blobs, cache mounts and contexts.
func (c *Collector) Usage(ctx context.Context) ([]Item, error) {
	st, err := c.scan(ctx)
	if err != nil {
		return nil, err
	}
	var items []Item
	counted := map[string]bool{}
	for _, r := range st.records {
		items = append(items, st.recordItem(r, counted))
	}
	names := make([]string, 0, len(st.snaps))
	for n, s := range st.snaps {
		if !s.record {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		items = append(items, st.snapshotItem(n))
	}
	labelled := st.labelledBlobs(nil)
	err = c.walkBlobs(ctx, func(info ctrcontent.Info) error {
		items = append(items, st.blobItem(info, labelled))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	for _, m := range st.mounts {
		items = append(items, cacheMountItem(m))
	}
	if c.c.Contexts != nil {
		kept, err := c.c.Contexts.Kept(ctx)
		if err != nil {
			return nil, err
		}
		for _, k := range kept {
			items = append(items, contextItem(k))
		}
	}
	return items, nil
}

// walkBlobs is Content.Walk, except that a store no blob was ever written
// to is empty: containerd's local store makes the directory it walks at
// the first write.
func (c *Collector) walkBlobs(ctx context.Context, fn ctrcontent.WalkFunc) error {
	visited := false
	err := c.c.Content.Walk(ctx, func(info ctrcontent.Info) error {
		visited = true
		return fn(info)
	})
	if !visited && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// recordItem describes r; counted holds the snapshots already counted.
func (st *state) recordItem(r cache.Record, counted map[string]bool) Item {
	it := Item{ID: r.Key.String(), Type: TypeRecord, Created: r.Created, LastUsed: r.LastUsed, Description: r.Description}
	s := st.snaps[r.Result]
	if s == nil {
		it.Description += " (result gone)"
		return it
	}
	it.InUse = s.inUse
	it.Shared = s.image || counted[r.Result]
	if !counted[r.Result] {
		it.Size = s.usage
		counted[r.Result] = true
	}
	if s.info.Parent != "" {
		it.Parents = []string{s.info.Parent}
	}
	return it
}

func (st *state) snapshotItem(name string) Item {
	s := st.snaps[name]
	it := Item{
		ID: name, Type: TypeSnapshot, Size: s.usage, InUse: s.inUse, Shared: s.image,
		Created: s.info.Created, LastUsed: s.info.Updated,
	}
	switch {
	case s.info.Kind != snapshots.KindCommitted:
		it.Description = "active (a step or container is running)"
	case s.image:
		it.Description = "layer of a stored image"
	case isLayer(name):
		it.Description = "image layer"
	default:
		it.Description = "result no cache record names"
	}
	if s.info.Parent != "" {
		it.Parents = []string{s.info.Parent}
	}
	return it
}

func (st *state) blobItem(info ctrcontent.Info, labelled map[digest.Digest]bool) Item {
	it := Item{ID: info.Digest.String(), Type: TypeBlob, Size: info.Size, Created: info.CreatedAt, LastUsed: info.UpdatedAt}
	if img, ok := st.imageBlobs[info.Digest]; ok {
		it.Shared, it.Description = true, "image "+img
	} else if labelled[info.Digest] {
		it.Shared, it.Description = true, "layer blob of a cached result"
	}
	return it
}

func contextItem(k Context) Item {
	desc := k.Path
	if k.Name != "" && k.Name != "context" {
		desc += " (" + k.Name + ")"
	}
	return Item{ID: filepath.Base(k.Dir), Type: TypeContext, Size: k.Size, InUse: k.InUse, LastUsed: k.LastUsed, Description: desc}
}

// labelledBlobs returns the blobs the layer labels of the snapshots
// (except those in gone) name: "<media type>|<digest>|<size>" values of
// kiln.io/layer.* labels.
func (st *state) labelledBlobs(gone map[string]bool) map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for name, s := range st.snaps {
		if gone[name] {
			continue
		}
		for k, v := range s.info.Labels {
			if !strings.HasPrefix(k, "kiln.io/layer.") {
				continue
			}
			parts := strings.Split(v, "|")
			if len(parts) != 3 {
				continue
			}
			if d, err := digest.Parse(parts[1]); err == nil {
				out[d] = true
			}
		}
	}
	return out
}

// isLayer reports whether a snapshot name is a chain ID (a pulled or
// unpacked image layer) rather than a step result.
func isLayer(name string) bool {
	_, err := digest.Parse(name)
	return err == nil
}

// cacheMountItem describes a cache mount directory.
func cacheMountItem(m CacheMount) Item {
	desc := "RUN --mount=type=cache directory"
	if m.ID != "" {
		desc = "RUN --mount=type=cache,id=" + m.ID
	}
	if m.Instance > 0 {
		desc += fmt.Sprintf(" (sharing=private copy %d)", m.Instance)
	}
	return Item{
		ID: m.Name, Type: TypeCacheMount, Size: m.Size, InUse: m.InUse,
		Created: m.Created, LastUsed: m.LastUsed, Description: desc,
	}
}
