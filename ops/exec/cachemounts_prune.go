package exec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/core/errdefs"
)

const (
	idsDir      = ".ids"
	trashPrefix = ".trash-"
)

// CacheMountInfo describes one cache mount directory.
type CacheMountInfo struct {
	// Name is the directory's name under Root, what Remove takes: a hash
	// of the cache id, with a "-N" suffix for the Nth extra directory
	// sharing=private made while the first was busy.
	Name string
	// ID is the cache id the directory was made for (--mount id=, which
	// defaults to the target); empty for directories made before Kiln
	// recorded it.
	ID string
	// Instance is N for a sharing=private extra directory, else 0.
	Instance int
	// Size is the bytes the directory takes on disk (allocated blocks;
	// hard links counted once).
	Size int64
	// Created is when the directory was made (zero if unknown).
	Created time.Time
	// LastUsed is when the last step using it ended (when it was made, if
	// none has ended yet).
	LastUsed time.Time
	// InUse: a step holds it (Get without release yet).
	InUse bool
}

// List describes every cache mount directory, sorted by name. Sizes are
// measured while steps may write to directories in use.
func (c *CacheMounts) List(ctx context.Context) ([]CacheMountInfo, error) {
	ents, err := os.ReadDir(c.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list cache mounts: %w", err)
	}
	var out []CacheMountInfo
	for _, e := range ents {
		if !e.IsDir() || !validName(e.Name()) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed since ReadDir
		}
		info := CacheMountInfo{Name: e.Name(), LastUsed: fi.ModTime()}
		if _, n, ok := strings.Cut(info.Name, "-"); ok {
			info.Instance, _ = strconv.Atoi(n)
		}
		idFile := filepath.Join(c.root, idsDir, info.Name)
		if b, err := os.ReadFile(idFile); err == nil {
			info.ID = string(b)
			if st, err := os.Stat(idFile); err == nil {
				info.Created = st.ModTime()
			}
		}
		c.mu.Lock()
		info.InUse = c.busy(info.Name)
		c.mu.Unlock()
		if info.Size, err = diskUsage(ctx, filepath.Join(c.root, info.Name)); err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// Remove deletes the cache mount directory name (a CacheMountInfo.Name).
// It fails with errdefs.ErrFailedPrecondition while a step uses the
// directory and with errdefs.ErrNotFound if there is none. The directory
// leaves its place under the lock Get takes, so the next step with its id
// gets a new, empty one; the files are deleted after.
func (c *CacheMounts) Remove(ctx context.Context, name string) error {
	if !validName(name) {
		return errdefs.Invalidf("cache mount %q: not a cache mount name", name)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Join(c.root, name)
	c.mu.Lock()
	if c.busy(name) {
		c.mu.Unlock()
		return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("cache mount %s is in use", name))
	}
	trash, err := os.MkdirTemp(c.root, trashPrefix)
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("remove cache mount %s: %w", name, err)
	}
	err = os.Rename(dir, filepath.Join(trash, name))
	if err == nil {
		_ = os.Remove(filepath.Join(c.root, idsDir, name))
	}
	c.mu.Unlock()
	if errors.Is(err, fs.ErrNotExist) {
		_ = os.Remove(trash)
		return errdefs.NotFoundf("cache mount %s", name)
	}
	if err != nil {
		_ = os.Remove(trash)
		return fmt.Errorf("remove cache mount %s: %w", name, err)
	}
	// What RemoveAll leaves (it fails half way) NewCacheMounts deletes.
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove cache mount %s: %w", name, err)
	}
	return nil
}

// validName reports whether name can be a cache mount directory: one path
// element, not hidden (.ids, .new-*, .trash-*).
func validName(name string) bool {
	return name != "" && !strings.HasPrefix(name, ".") && !strings.ContainsAny(name, `/\`)
}

// diskUsage returns the bytes the tree at dir takes on disk. It is
// continuity's fs.DiskUsage, except that files vanishing during the walk
// (a running step deletes them) are skipped instead of ending it.
func diskUsage(ctx context.Context, dir string) (int64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var size int64
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err != nil {
			return nil // unreadable or gone: not counted
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			size += fi.Size()
			return nil
		}
		k := inode{uint64(st.Dev), st.Ino} //nolint:unconvert // Dev is not uint64 everywhere
		if !seen[k] {
			seen[k] = true
			size += st.Blocks * 512
		}
		return nil
	})
	return size, err
}
