package bolt

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/cachetest"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Flush(); err != nil {
			t.Error(err)
		}
		db.Close()
	})
	return s
}

func TestConformance(t *testing.T) {
	paths := map[cache.Store]string{}
	cachetest.Run(t,
		func(t *testing.T) cache.Store {
			p := filepath.Join(t.TempDir(), "metadata.db")
			s := open(t, p)
			paths[s] = p
			return s
		},
		func(t *testing.T, s cache.Store) cache.Store {
			bs := s.(*Store)
			if err := bs.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := bs.db.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, paths[s])
		})
}
