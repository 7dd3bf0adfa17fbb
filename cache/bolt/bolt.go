// Package bolt is the daemon's cache.Store, kept in a bbolt database
// (metadata.db under the daemon root). Every Put is one transaction, so a
// daemon killed at any moment leaves either the whole record or none of it.
package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/kiln-build/kiln/cache"
)

var (
	bucketRecords    = []byte("cache.records")
	bucketComponents = []byte("cache.components")
	bucketSteps      = []byte("cache.steps")
)

// Store is a cache.Store in a bbolt database.
type Store struct {
	db *bolt.DB

	// Touches are buffered and written in one transaction by Flush, so
	// that a fully cached build does not pay one fsync per step.
	mu      sync.Mutex
	touches map[digest.Digest]time.Time
}

var _ cache.Store = (*Store)(nil)

// New returns a store in db, creating its buckets. The caller owns db and
// must call Flush before closing it.
func New(db *bolt.DB) (*Store, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRecords, bucketComponents, bucketSteps} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create cache buckets: %w", err)
	}
	return &Store{db: db, touches: map[digest.Digest]time.Time{}}, nil
}

// Get implements cache.Store.
func (s *Store) Get(_ context.Context, key digest.Digest) (cache.Record, error) {
	var r cache.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRecords).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("get %s: %w", key, cache.ErrNotFound)
		}
		return json.Unmarshal(v, &r)
	})
	if err != nil {
		return cache.Record{}, err
	}
	s.mu.Lock()
	if t, ok := s.touches[key]; ok && t.After(r.LastUsed) {
		r.LastUsed = t
	}
	s.mu.Unlock()
	return r, nil
}

// Put implements cache.Store.
func (s *Store) Put(_ context.Context, r cache.Record) error {
	if r.Key == "" {
		return fmt.Errorf("put record: empty key")
	}
	comps := r.Components
	r.Components = nil
	rb, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", r.Key, err)
	}
	var cb []byte
	if comps != nil {
		if cb, err = json.Marshal(comps); err != nil {
			return fmt.Errorf("encode components of %s: %w", r.Key, err)
		}
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		k := []byte(r.Key)
		if err := tx.Bucket(bucketRecords).Put(k, rb); err != nil {
			return err
		}
		if cb != nil {
			if err := tx.Bucket(bucketComponents).Put(k, cb); err != nil {
				return err
			}
		} else if err := tx.Bucket(bucketComponents).Delete(k); err != nil {
			return err
		}
		if r.StepID != "" {
			return tx.Bucket(bucketSteps).Put([]byte(r.StepID), k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put record %s: %w", r.Key, err)
	}
	return nil
}

// Delete implements cache.Store.
func (s *Store) Delete(_ context.Context, key digest.Digest) error {
	s.mu.Lock()
	delete(s.touches, key)
	s.mu.Unlock()
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketRecords).Delete([]byte(key)); err != nil {
			return err
		}
		return tx.Bucket(bucketComponents).Delete([]byte(key))
	})
}

// Walk implements cache.Store.
func (s *Store) Walk(ctx context.Context, fn func(cache.Record) error) error {
	var recs []cache.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(_, v []byte) error {
			var r cache.Record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			recs = append(recs, r)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("walk cache records: %w", err)
	}
	s.mu.Lock()
	for i, r := range recs {
		if t, ok := s.touches[r.Key]; ok && t.After(r.LastUsed) {
			recs[i].LastUsed = t
		}
	}
	s.mu.Unlock()
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Step implements cache.Store.
func (s *Store) Step(_ context.Context, stepID string) (cache.Record, error) {
	var r cache.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		k := tx.Bucket(bucketSteps).Get([]byte(stepID))
		if k == nil {
			return fmt.Errorf("step %q: %w", stepID, cache.ErrNotFound)
		}
		v := tx.Bucket(bucketRecords).Get(k)
		if v == nil {
			return fmt.Errorf("step %q: %w", stepID, cache.ErrNotFound)
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if c := tx.Bucket(bucketComponents).Get(k); c != nil {
			r.Components = &cache.Components{}
			return json.Unmarshal(c, r.Components)
		}
		return nil
	})
	if err != nil {
		return cache.Record{}, err
	}
	return r, nil
}

// Touch implements cache.Store. The time is kept in memory until Flush.
func (s *Store) Touch(_ context.Context, key digest.Digest, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.touches[key]; !ok || t.After(old) {
		s.touches[key] = t
	}
	return nil
}

// Flush writes buffered Touch times in one transaction.
func (s *Store) Flush() error {
	s.mu.Lock()
	touches := s.touches
	s.touches = map[digest.Digest]time.Time{}
	s.mu.Unlock()
	if len(touches) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for key, t := range touches {
			v := b.Get([]byte(key))
			if v == nil {
				continue
			}
			var r cache.Record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if !t.After(r.LastUsed) {
				continue
			}
			r.LastUsed = t
			nb, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(key), nb); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("flush cache use times: %w", err)
	}
	return nil
}
