package exec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/continuity/fs"

	"github.com/kiln-build/kiln/graph"
)

// CacheMounts manages the persistent directories of RUN
// --mount=type=cache, under <root>/cachemounts, one per cache id (plus
// extra instances for sharing=private while the first is in use).
//
// sharing=shared lets every step use the directory at once;
// sharing=locked makes steps wait for each other; sharing=private gives a
// step that finds the directory busy a directory of its own.
//
// A directory is in use from Get until its release function is called;
// release sets the directory's modification time, which List reports as
// its last use. Remove deletes a directory no step uses, under the lock
// Get takes, so a step never mounts a directory being removed: a removed
// id simply starts empty at its next Get.
//
// On disk: <root>/<name> is a cache directory, <root>/.ids/<name> holds
// the cache id it was made for (its modification time is the creation
// time), <root>/.new-* are directories being created and <root>/.trash-*
// ones being removed (both discarded by NewCacheMounts).
type CacheMounts struct {
	root string

	mu      sync.Mutex
	entries map[string]*cacheEntry // by directory name, while used
}

type cacheEntry struct {
	users int
	lock  chan struct{} // held (full) while a locked user has it
}

// CacheRequest describes one cache mount.
type CacheRequest struct {
	ID      string
	Sharing graph.CacheSharing
	UID     *int
	GID     *int
	Mode    *uint32
	// Seed, if set, fills a newly created directory (--mount from=...).
	Seed func(dst string) error
}

// NewCacheMounts returns the manager of root (created if missing).
func NewCacheMounts(root string) (*CacheMounts, error) {
	if err := os.MkdirAll(filepath.Join(root, idsDir), 0o700); err != nil {
		return nil, fmt.Errorf("cache mounts: %w", err)
	}
	// Directories being created or removed when a daemon died are
	// incomplete.
	for _, pat := range []string{".new-*", trashPrefix + "*"} {
		tmps, _ := filepath.Glob(filepath.Join(root, pat))
		for _, t := range tmps {
			_ = os.RemoveAll(t)
		}
	}
	return &CacheMounts{root: root, entries: map[string]*cacheEntry{}}, nil
}

// Root returns the directory holding the cache mounts.
func (c *CacheMounts) Root() string { return c.root }

// Get returns the directory for req, creating and seeding it if needed, and
// a release function to call when the step ends.
func (c *CacheMounts) Get(ctx context.Context, req CacheRequest) (string, func(), error) {
	sum := sha256.Sum256([]byte(req.ID))
	base := hex.EncodeToString(sum[:16])

	name := base
	c.mu.Lock()
	if req.Sharing == graph.SharingPrivate {
		for i := 1; c.busy(name); i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
	}
	ent := c.entries[name]
	if ent == nil {
		ent = &cacheEntry{lock: make(chan struct{}, 1)}
		c.entries[name] = ent
	}
	ent.users++
	c.mu.Unlock()
	dir := filepath.Join(c.root, name)
	// unuse ends this use: the directory's time records it (before the
	// count drops, so that Remove cannot have taken it in between).
	unuse := func() {
		now := time.Now()
		_ = os.Chtimes(dir, now, now)
		c.mu.Lock()
		if ent.users--; ent.users == 0 {
			delete(c.entries, name)
		}
		c.mu.Unlock()
	}

	if req.Sharing == graph.SharingLocked {
		select {
		case ent.lock <- struct{}{}:
		case <-ctx.Done():
			unuse()
			return "", nil, context.Cause(ctx)
		}
		unlocked := unuse
		unuse = func() {
			<-ent.lock
			unlocked()
		}
	}
	var once sync.Once
	release := func() { once.Do(unuse) }

	if err := c.create(dir, name, req); err != nil {
		release()
		return "", nil, fmt.Errorf("cache mount %q: %w", req.ID, err)
	}
	return dir, release, nil
}

// busy reports whether a step uses the directory name. c.mu is held.
func (c *CacheMounts) busy(name string) bool {
	e := c.entries[name]
	return e != nil && e.users > 0
}

// create makes dir if it does not exist yet: it is filled in a temporary
// directory and renamed into place, so a crash never leaves half a seed.
func (c *CacheMounts) create(dir, name string, req CacheRequest) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	tmp, err := os.MkdirTemp(c.root, ".new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if req.Seed != nil {
		if err := req.Seed(tmp); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	if err := chownMode(tmp, req.UID, req.GID, req.Mode, 0o755); err != nil {
		return err
	}
	// The id only names the directory in kiln du; a directory without it
	// still works.
	_ = os.WriteFile(filepath.Join(c.root, idsDir, name), []byte(req.ID), 0o600)
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

// copyTree copies the tree at src into the existing directory dst,
// preserving modes, owners, times, links and xattrs.
func copyTree(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return copyFile(src, filepath.Join(dst, filepath.Base(src)), st.Mode())
	}
	return fs.CopyDir(dst, src)
}
