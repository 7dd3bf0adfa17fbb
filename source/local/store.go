package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/session"
)

// SyncFunc brings dir up to date with the client (Store.Sync).
type SyncFunc func(ctx context.Context, dir string) (session.SyncStats, error)

// Key identifies one kept context.
type Key struct {
	// ClientID identifies the client (a machine and user), as the
	// BuildRequest's client_id.
	ClientID string `json:"clientId"`
	// Path is the context's directory on the client (the BuildRequest's
	// context_path, graph.LocalSource.SharedKeyHint).
	Path string `json:"path"`
	// Name is the sync name: "context" or "context:<name>".
	Name string `json:"name"`
}

// dirName is the key's directory name under the store root.
func (k Key) dirName() string {
	b, _ := json.Marshal(k) // three strings: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Store keeps the last synced copy of each context, so the next build of
// the same directory transfers only what changed.
//
// Layout under the root (the worker passes <kiln root>/contexts):
//
//	<hash(key)>/key.json     the key, for people and gc
//	<hash(key)>/gen-<n>/     a copy of the context ("generation")
//	<hash(key)>/hashes.gob   the content-hash cache of its files
//
// A build takes a generation with Sync and holds it (a read handle, *Ref)
// until it releases it. Syncs of one key are serialized. A sync updates the
// current generation in place when no build holds it; when builds do, it
// first clones it with hard links (cheap: files in a generation are only
// ever replaced by rename, never modified, so sharing their inodes is safe)
// and syncs the clone, so a second build never waits for the first one to
// finish, only for its sync. A generation is removed when it is neither
// current nor held.
type Store struct {
	root string

	mu      sync.Mutex
	entries map[string]*entry
	bg      sync.WaitGroup // background removals
}

// NewStore opens (creating it if needed) a store rooted at root. Private
// copies left by an earlier process are removed.
func NewStore(root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("open context store: %w", err)
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("open context store: %w", err)
	}
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), privatePrefix) {
			if err := os.RemoveAll(filepath.Join(root, d.Name())); err != nil {
				return nil, fmt.Errorf("open context store: %w", err)
			}
		}
	}
	return &Store{root: root, entries: map[string]*entry{}}, nil
}

// privatePrefix names the directories of copies kept for one sync only.
const privatePrefix = "private-"

// Close waits for background removals of old generations.
func (s *Store) Close() error {
	s.bg.Wait()
	return nil
}

// entry is one key's state in this process.
type entry struct {
	s       *Store
	dir     string
	private bool          // removed entirely when released
	syncMu  chan struct{} // one sync at a time; a channel so waiting honours ctx

	mu     sync.Mutex
	cur    *gen
	next   int
	hashes *hashCache
}

// gen is one generation directory.
type gen struct {
	path    string
	readers int
	// sums are the content digests taken of this copy, by selectors
	// (sumKey); guarded by entry.mu. A sync that changes the copy in
	// place drops them; one that changes nothing keeps them, and a clone
	// synced without change takes them over, so an unchanged context is
	// not walked again.
	sums map[string]ops.Content
}

func (s *Store) entry(k Key) (*entry, error) {
	name := k.dirName()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[name]; ok {
		return e, nil
	}
	e := &entry{s: s, dir: filepath.Join(s.root, name), syncMu: make(chan struct{}, 1)}
	if err := e.open(k); err != nil {
		return nil, err
	}
	s.entries[name] = e
	return e, nil
}

// open adopts what an earlier process left: the newest generation becomes
// current (any generation is a valid base for a sync: a sync corrects every
// difference), older ones are removed.
func (e *entry) open(k Key) error {
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return fmt.Errorf("open context store: %w", err)
	}
	b, _ := json.Marshal(k)
	if err := writeFileAtomic(filepath.Join(e.dir, "key.json"), b); err != nil {
		return fmt.Errorf("open context store: %w", err)
	}
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		return fmt.Errorf("open context store: %w", err)
	}
	newest := -1
	var gens []int
	for _, d := range ents {
		n, ok := genNumber(d.Name())
		if !ok {
			if strings.HasPrefix(d.Name(), ".tmp-") {
				_ = os.RemoveAll(filepath.Join(e.dir, d.Name()))
			}
			continue
		}
		gens = append(gens, n)
		newest = max(newest, n)
	}
	for _, n := range gens {
		if n != newest {
			if err := os.RemoveAll(e.genPath(n)); err != nil {
				return fmt.Errorf("open context store: %w", err)
			}
		}
	}
	if newest >= 0 {
		e.cur = &gen{path: e.genPath(newest)}
	}
	e.next = newest + 1
	e.hashes = loadHashCache(filepath.Join(e.dir, "hashes.gob"))
	return nil
}

func genNumber(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "gen-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

func (e *entry) genPath(n int) string { return filepath.Join(e.dir, "gen-"+strconv.Itoa(n)) }

// Sync brings key's copy up to date by calling sync with the directory to
// update, and returns a read handle on the result. Syncs of one key wait
// for each other (ctx bounds the wait); they never wait for readers.
// sync must make dir mirror the client and may only replace files by
// rename (filesync.Receive does); its stats' Unchanged keeps the content
// digests taken of the copy before (Ref.Checksum). If sync fails the
// previous copy stays current.
//
// A key without a ClientID gets a private copy, synced from scratch and
// removed when released: copies are shared only between builds known to
// come from the same client, since a sync trusts that a file with the same
// size, mtime and mode as the copy's has the same content.
func (s *Store) Sync(ctx context.Context, k Key, sync SyncFunc) (*Ref, error) {
	if k.ClientID == "" {
		return s.syncPrivate(ctx, sync)
	}
	e, err := s.entry(k)
	if err != nil {
		return nil, err
	}
	select {
	case e.syncMu <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	defer func() { <-e.syncMu }()

	e.mu.Lock()
	cur := e.cur
	target := cur
	if cur == nil || cur.readers > 0 {
		target = &gen{path: e.genPath(e.next)}
		e.next++
	}
	e.mu.Unlock()

	if target != cur {
		var err error
		if cur == nil {
			err = os.Mkdir(target.path, 0o755)
		} else {
			err = cloneTree(ctx, cur.path, target.path)
		}
		if err != nil {
			_ = os.RemoveAll(target.path)
			return nil, fmt.Errorf("prepare context copy: %w", err)
		}
	}
	st, err := sync(ctx, target.path)
	if err != nil {
		if target != cur {
			_ = os.RemoveAll(target.path)
		} else {
			// A failed sync may have changed the copy part of the way.
			e.mu.Lock()
			cur.sums = nil
			e.mu.Unlock()
		}
		return nil, err
	}

	e.mu.Lock()
	switch {
	case !st.Unchanged:
		target.sums = nil
	case target != cur && cur != nil:
		// The clone has cur's files (hard links) and directory modes.
		target.sums = maps.Clone(cur.sums)
	}
	old := e.cur
	e.cur = target
	target.readers++
	drop := old != nil && old != target && old.readers == 0
	e.mu.Unlock()
	if drop {
		s.removeBG(old.path)
	}
	return &Ref{e: e, g: target}, nil
}

func (s *Store) syncPrivate(ctx context.Context, sync SyncFunc) (*Ref, error) {
	dir, err := os.MkdirTemp(s.root, privatePrefix)
	if err != nil {
		return nil, fmt.Errorf("prepare context copy: %w", err)
	}
	g := &gen{path: filepath.Join(dir, "gen-0"), readers: 1}
	if err := os.Mkdir(g.path, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("prepare context copy: %w", err)
	}
	if _, err := sync(ctx, g.path); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	e := &entry{s: s, dir: dir, private: true, hashes: newHashCache("")}
	return &Ref{e: e, g: g}, nil
}

func (s *Store) removeBG(path string) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		_ = os.RemoveAll(path)
	}()
}

// Ref is a build's read handle on a synced context: an ops.Ref whose files
// stay as they are until it is released. Its ID is "" (a context is never
// a cache result).
type Ref struct {
	e    *entry
	g    *gen
	once sync.Once
}

var (
	_ ops.Ref = (*Ref)(nil)
	_ ops.Dir = (*Ref)(nil)
)

// ID returns "": a synced context cannot be loaded again by id.
func (r *Ref) ID() string { return "" }

// Dir is the directory holding the context. Its files may be hard-linked
// (they are never modified in place) but must not be modified, chmod-ed or
// chown-ed through a link.
func (r *Ref) Dir() string { return r.g.path }

// Release gives the copy back; it may be removed once no build holds it and
// a newer one exists. Releasing twice is harmless.
func (r *Ref) Release(context.Context) error {
	r.once.Do(func() {
		e := r.e
		e.mu.Lock()
		r.g.readers--
		drop := r.g.readers == 0 && r.g != e.cur
		e.mu.Unlock()
		switch {
		case drop && e.private:
			e.s.removeBG(e.dir)
		case drop:
			e.s.removeBG(r.g.path)
		}
	})
	return nil
}

// Checksum is the content digest of the selected paths of the context (see
// the package function Checksum), using the store's hash cache so that
// files unchanged since an earlier build are not read again. A digest of
// the same selectors taken since the copy last changed is returned as it
// is (its Files map is shared: callers must not modify it).
func (r *Ref) Checksum(ctx context.Context, selectors []string) (ops.Content, error) {
	key := sumKey(selectors)
	r.e.mu.Lock()
	c, ok := r.g.sums[key]
	r.e.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := checksum(ctx, r.g.path, selectors, r.e.hashes)
	// The cache is an optimisation: a failed save costs time, not
	// correctness, so it does not fail the checksum.
	_ = r.e.hashes.save()
	if err != nil {
		return c, err
	}
	// The copy cannot change while r holds it (a sync changes only a
	// copy no build reads), so the digest holds until a sync drops it.
	r.e.mu.Lock()
	if r.g.sums == nil {
		r.g.sums = map[string]ops.Content{}
	}
	r.g.sums[key] = c
	r.e.mu.Unlock()
	return c, nil
}

// sumKey names a selector list in gen.sums.
func sumKey(selectors []string) string {
	b, _ := json.Marshal(selectors) // a []string always marshals
	return string(b)
}

// cloneTree copies the tree src to dst (which must not exist): directories
// are created, regular files and symbolic links are hard-linked. Modes and
// times of directories are copied.
func cloneTree(ctx context.Context, src, dst string) error {
	type dirTime struct {
		path string
		mode fs.FileMode
		mt   time.Time
	}
	var dirs []dirTime
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n%256 == 0 {
			if err := context.Cause(ctx); err != nil {
				return err
			}
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if !d.IsDir() {
			return os.Link(p, out) // links a symlink itself, not its target
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.Mkdir(out, 0o700); err != nil {
			return err
		}
		dirs = append(dirs, dirTime{out, fi.Mode(), fi.ModTime()})
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := os.Chmod(d.path, d.mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		if err := os.Chtimes(d.path, d.mt, d.mt); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic replaces name with data by writing a temporary file in the
// same directory and renaming it.
func writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return nil
}
