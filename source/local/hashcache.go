package local

import (
	"bytes"
	"encoding/gob"
	"os"
	"sync"

	digest "github.com/opencontainers/go-digest"
)

// fileID identifies one version of a file in a context copy. Files there
// are only ever replaced by rename, so a new version is a new inode (and a
// new birth time where the filesystem records one, which guards against
// inode reuse); size, mtime and mode are checked too for files that were
// put there by other means.
type fileID struct {
	Ino   uint64
	Btime int64 // unix nanoseconds; 0 if unknown
	Size  int64
	Mtime int64 // unix nanoseconds
	Mode  uint32
}

// hashCache maps path → (fileID, content digest) for one context. It is
// kept across builds in memory and, written atomically, on disk, so that a
// restarted daemon does not hash the whole context again.
type hashCache struct {
	file string // "" keeps it in memory only

	mu    sync.Mutex
	m     map[string]*cachedHash
	used  int // entries looked up or added by this process
	dirty bool

	saveMu sync.Mutex
}

type cachedHash struct {
	ID     fileID
	Digest digest.Digest
	used   bool
}

// hashCacheFile is the on-disk form, versioned so a format change discards
// old files instead of misreading them.
type hashCacheFile struct {
	Version int
	Entries map[string]cachedHash
}

const hashCacheVersion = 1

func newHashCache(file string) *hashCache {
	return &hashCache{file: file, m: map[string]*cachedHash{}}
}

// loadHashCache reads file; a missing or unreadable file gives an empty
// cache (it is only an optimisation).
func loadHashCache(file string) *hashCache {
	hc := newHashCache(file)
	b, err := os.ReadFile(file)
	if err != nil {
		return hc
	}
	var f hashCacheFile
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&f); err != nil || f.Version != hashCacheVersion {
		return hc
	}
	for p, e := range f.Entries {
		if err := e.Digest.Validate(); err == nil {
			hc.m[p] = &cachedHash{ID: e.ID, Digest: e.Digest}
		}
	}
	return hc
}

func (hc *hashCache) get(p string, id fileID) (digest.Digest, bool) {
	if hc == nil {
		return "", false
	}
	hc.mu.Lock()
	defer hc.mu.Unlock()
	e, ok := hc.m[p]
	if !ok || e.ID != id {
		return "", false
	}
	if !e.used {
		e.used = true
		hc.used++
	}
	return e.Digest, true
}

func (hc *hashCache) put(p string, id fileID, d digest.Digest) {
	if hc == nil {
		return
	}
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if old, ok := hc.m[p]; ok && old.used {
		hc.used--
	}
	hc.m[p] = &cachedHash{ID: id, Digest: d, used: true}
	hc.used++
	hc.dirty = true
}

// save writes the cache if it changed. Entries this process has not used
// are dropped once they outnumber the used ones (files deleted from the
// context leave entries behind).
func (hc *hashCache) save() error {
	if hc == nil || hc.file == "" {
		return nil
	}
	hc.saveMu.Lock()
	defer hc.saveMu.Unlock()
	hc.mu.Lock()
	if !hc.dirty {
		hc.mu.Unlock()
		return nil
	}
	if len(hc.m) > 2*hc.used+1024 {
		for p, e := range hc.m {
			if !e.used {
				delete(hc.m, p)
			}
		}
	}
	f := hashCacheFile{Version: hashCacheVersion, Entries: make(map[string]cachedHash, len(hc.m))}
	for p, e := range hc.m {
		f.Entries[p] = cachedHash{ID: e.ID, Digest: e.Digest}
	}
	hc.dirty = false
	hc.mu.Unlock()

	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&f); err != nil {
		return err
	}
	if err := writeFileAtomic(hc.file, buf.Bytes()); err != nil {
		hc.mu.Lock()
		hc.dirty = true
		hc.mu.Unlock()
		return err
	}
	return nil
}
