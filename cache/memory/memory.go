// Package memory is an in-memory cache.Store, for tests and for state that
// must not outlive a process.
package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache"
)

// Store is an in-memory cache.Store. The zero value is not usable; call New.
type Store struct {
	mu      sync.Mutex
	records map[digest.Digest]cache.Record
	comps   map[digest.Digest]*cache.Components
	steps   map[string]digest.Digest
}

var _ cache.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		records: map[digest.Digest]cache.Record{},
		comps:   map[digest.Digest]*cache.Components{},
		steps:   map[string]digest.Digest{},
	}
}

// Get implements cache.Store.
func (s *Store) Get(_ context.Context, key digest.Digest) (cache.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key]
	if !ok {
		return cache.Record{}, fmt.Errorf("get %s: %w", key, cache.ErrNotFound)
	}
	return r, nil
}

// Put implements cache.Store.
func (s *Store) Put(_ context.Context, r cache.Record) error {
	if r.Key == "" {
		return fmt.Errorf("put record: empty key")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	comps := r.Components
	r.Components = nil
	s.records[r.Key] = r
	if comps != nil {
		c := *comps
		s.comps[r.Key] = &c
	}
	if r.StepID != "" {
		s.steps[r.StepID] = r.Key
	}
	return nil
}

// Delete implements cache.Store.
func (s *Store) Delete(_ context.Context, key digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, key)
	delete(s.comps, key)
	return nil
}

// Walk implements cache.Store.
func (s *Store) Walk(_ context.Context, fn func(cache.Record) error) error {
	s.mu.Lock()
	recs := make([]cache.Record, 0, len(s.records))
	for _, r := range s.records {
		recs = append(recs, r)
	}
	s.mu.Unlock()
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Step implements cache.Store.
func (s *Store) Step(_ context.Context, stepID string) (cache.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key, ok := s.steps[stepID]
	if !ok {
		return cache.Record{}, fmt.Errorf("step %q: %w", stepID, cache.ErrNotFound)
	}
	r, ok := s.records[key]
	if !ok {
		return cache.Record{}, fmt.Errorf("step %q: %w", stepID, cache.ErrNotFound)
	}
	if c, ok := s.comps[key]; ok {
		cc := *c
		r.Components = &cc
	}
	return r, nil
}

// Touch implements cache.Store.
func (s *Store) Touch(_ context.Context, key digest.Digest, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.records[key]; ok && t.After(r.LastUsed) {
		r.LastUsed = t
		s.records[key] = r
	}
	return nil
}
