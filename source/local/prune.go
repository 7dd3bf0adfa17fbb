package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Kept describes one kept context for disk usage and gc.
type Kept struct {
	Key Key
	// Dir is the key's directory under the store root.
	Dir string
	// Size is the bytes its files take (a file hard-linked into two
	// generations counts once).
	Size int64
	// LastUsed is when a sync or checksum last wrote to it.
	LastUsed time.Time
	// InUse is set while a build holds a copy or syncs it.
	InUse bool
}

// Kept lists the kept contexts (not the private copies of running builds).
func (s *Store) Kept(ctx context.Context) ([]Kept, error) {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("list contexts: %w", err)
	}
	var out []Kept
	for _, d := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !d.IsDir() || strings.HasPrefix(d.Name(), privatePrefix) {
			continue
		}
		k := s.describe(d.Name())
		if k.empty && !k.InUse {
			continue // pruned already: only its key is left
		}
		out = append(out, k.Kept)
	}
	return out, nil
}

// described is a Kept and whether it holds no copy at all.
type described struct {
	Kept
	empty bool
}

// describe reads what is known about the key directory name.
func (s *Store) describe(name string) described {
	dir := filepath.Join(s.root, name)
	k := described{Kept: Kept{Dir: dir}}
	gens, _ := filepath.Glob(filepath.Join(dir, "gen-*"))
	k.empty = len(gens) == 0
	if b, err := os.ReadFile(filepath.Join(dir, "key.json")); err == nil {
		_ = json.Unmarshal(b, &k.Key)
	}
	k.Size, k.LastUsed = treeUsage(dir)
	s.mu.Lock()
	e := s.entries[name]
	s.mu.Unlock()
	if e != nil {
		k.InUse = len(e.syncMu) > 0 || e.held(dir)
	}
	return k
}

// held reports whether a build holds a generation of e: the current one,
// or an older one (a generation other than the current one exists only
// while a build holds it or its removal runs).
func (e *entry) held(dir string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != nil && e.cur.readers > 0 {
		return true
	}
	gens, _ := filepath.Glob(filepath.Join(dir, "gen-*"))
	for _, g := range gens {
		if e.cur == nil || g != e.cur.path {
			return true
		}
	}
	return false
}

// treeUsage sums the sizes of the distinct files under dir and returns the
// newest modification time of dir's direct entries (a sync renames files
// into the generation, a checksum rewrites hashes.gob).
func treeUsage(dir string) (int64, time.Time) {
	var size int64
	var last time.Time
	seen := map[uint64]bool{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if filepath.Dir(p) == dir && fi.ModTime().After(last) {
			last = fi.ModTime()
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		size += fi.Size()
		return nil
	})
	return size, last
}

// Prune removes the kept contexts last used before unusedSince that no
// build holds or syncs, calling removed for each (with its size before
// removal). The next build of a pruned context transfers it whole again.
// A context a build starts to sync while Prune looks at it is skipped.
func (s *Store) Prune(ctx context.Context, unusedSince time.Time, removed func(Kept) error) error {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return fmt.Errorf("prune contexts: %w", err)
	}
	for _, d := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.IsDir() || strings.HasPrefix(d.Name(), privatePrefix) {
			continue
		}
		k := s.describe(d.Name())
		if k.InUse || k.empty || k.LastUsed.After(unusedSince) {
			continue
		}
		ok, err := s.pruneOne(d.Name(), unusedSince)
		if err != nil {
			return err
		}
		if ok && removed != nil {
			if err := removed(k.Kept); err != nil {
				return err
			}
		}
	}
	return nil
}

// pruneOne removes the key directory name unless it is in use. A key this
// process has loaded keeps its (empty) directory and key.json, since a
// build may already hold its entry: the next sync starts from scratch.
func (s *Store) pruneOne(name string, unusedSince time.Time) (bool, error) {
	dir := filepath.Join(s.root, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil {
		// Not loaded: entry() cannot load it while s.mu is held.
		if _, last := treeUsage(dir); last.After(unusedSince) {
			return false, nil
		}
		if err := os.RemoveAll(dir); err != nil {
			return false, fmt.Errorf("prune context %s: %w", dir, err)
		}
		return true, nil
	}
	select {
	case e.syncMu <- struct{}{}:
	default:
		return false, nil // a sync is running
	}
	defer func() { <-e.syncMu }()
	if e.held(dir) {
		return false, nil
	}
	// Syncs are locked out and no build holds a generation; a new Ref
	// comes only from a sync, so nothing can start using the copy now.
	e.mu.Lock()
	defer e.mu.Unlock()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("prune context %s: %w", dir, err)
	}
	for _, d := range ents {
		if d.Name() == "key.json" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, d.Name())); err != nil {
			return false, fmt.Errorf("prune context %s: %w", dir, err)
		}
	}
	e.cur = nil
	e.hashes = newHashCache(filepath.Join(dir, "hashes.gob"))
	return true, nil
}
