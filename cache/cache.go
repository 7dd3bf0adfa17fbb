// Package cache defines Kiln's step cache: records that map a cache key to
// the result of a step. Store implementations live in subpackages (bolt/
// for the daemon, memory/ for tests and per-build state) and pass one
// conformance suite (cachetest/). Remote backends (registry, local, inline,
// redis) come in remote/.
//
// This package never imports the solver or the client.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/ops"
)

// ErrNotFound is returned by Store.Get and Store.Step on a miss. It is in
// the errdefs.ErrNotFound class.
var ErrNotFound = errdefs.WithClass(errdefs.ErrNotFound, errors.New("cache: not found"))

// Record is one cached step result.
type Record struct {
	Key      digest.Digest `json:"key"`
	Result   string        `json:"result"` // the result's ID (a snapshot name)
	Size     int64         `json:"size,omitempty"`
	Created  time.Time     `json:"created"`
	LastUsed time.Time     `json:"lastUsed"`
	// StepID is graph.Meta.StepID of the vertex that made the record.
	StepID string `json:"stepId,omitempty"`
	// Description is a human name for the step ("RUN make").
	Description string `json:"description,omitempty"`
	// Components, when loaded, holds what went into Key. Get leaves it
	// nil; Step fills it.
	Components *Components `json:"-"`
}

// Components are the parts of a cache key, kept to explain later misses.
type Components struct {
	OpDigest digest.Digest   `json:"opDigest"`
	Op       json.RawMessage `json:"op,omitempty"` // the graph.Op JSON
	Inputs   []Input         `json:"inputs,omitempty"`
}

// Input is one input's part of a key.
type Input struct {
	Key     digest.Digest `json:"key"`
	Name    string        `json:"name,omitempty"`    // the input vertex's name
	Content *ops.Content  `json:"content,omitempty"` // for content-keyed inputs
}

// Store is a step cache.
type Store interface {
	// Get returns the record for key without its Components, or an error
	// wrapping ErrNotFound.
	Get(ctx context.Context, key digest.Digest) (Record, error)
	// Put stores r (and r.Components if set), replacing any record with
	// the same key, and makes it the newest record of r.StepID.
	Put(ctx context.Context, r Record) error
	// Delete removes the record for key; a missing key is not an error.
	Delete(ctx context.Context, key digest.Digest) error
	// Walk calls fn for every record (without Components).
	Walk(ctx context.Context, fn func(Record) error) error
	// Step returns the newest record stored for stepID, with Components.
	Step(ctx context.Context, stepID string) (Record, error)
	// Touch marks key as used at t (for gc). It may be applied lazily.
	Touch(ctx context.Context, key digest.Digest, t time.Time) error
}
