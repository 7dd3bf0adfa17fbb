package history

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/core/errdefs"
)

var bucket = []byte("history.v1")

// pinnedBucket holds the keys of the pinned records: the
// trim after every build counts records by their keys alone, where
// decoding every record with its trace cost a quick rebuild ~7 ms of CPU
// once the history was full.
var pinnedBucket = []byte("history.v1.pinned")

// pinnedMark is a pinned key's value (bolt's Get returns nil for a
// missing key; a non-empty value tells them apart surely).
var pinnedMark = []byte{1}

// Limit is how many finished builds the history keeps, pinned ones aside.
const Limit = 200

// The states of a build record.
const (
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCanceled  = "canceled"
)

// Record is one build.
type Record struct {
	Ref              string            `json:"ref"`
	Created          time.Time         `json:"created"`
	Completed        time.Time         `json:"completed"`
	Status           string            `json:"status"` // running, completed, failed, canceled
	Error            string            `json:"error,omitempty"`
	Steps            int               `json:"steps"`
	Cached           int               `json:"cached"`
	Target           string            `json:"target,omitempty"`
	DockerfileName   string            `json:"dockerfileName,omitempty"`
	ExporterResponse map[string]string `json:"exporterResponse,omitempty"`
	// Pinned records are kept beyond Limit.
	Pinned bool `json:"pinned,omitempty"`
	// Trace is the build's steps with their timings, cache status,
	// errors, last log lines and, for steps that ran a container, what
	// they used, as a Recorder kept them (bounded, the build's secrets
	// redacted). Critical is how long the longest chain of dependent
	// steps took (its steps are marked Critical).
	Trace    []Step        `json:"trace,omitempty"`
	Critical time.Duration `json:"criticalNs,omitempty"`
}

// Filter selects records: all of them, or those of one build ref; at
// most Limit (0: no limit). Without Trace, the records come without
// their steps.
type Filter struct {
	Ref   string
	Limit int
	Trace bool
}

func (f Filter) match(r Record) bool { return f.Ref == "" || r.Ref == f.Ref }

// Service keeps the history: running builds in memory, finished ones in
// the metadata database. It is safe for concurrent use.
type Service struct {
	db *bolt.DB

	mu        sync.Mutex
	active    map[string]Record
	order     []string // refs of active, in start order
	listeners map[*listener]struct{}
}

// Open returns the history kept in db.
func Open(db *bolt.DB) (*Service, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		if tx.Bucket(pinnedBucket) != nil {
			return nil
		}
		// A history written before the pinned keys had their own bucket.
		pinned, err := tx.CreateBucket(pinnedBucket)
		if err != nil {
			return err
		}
		return bk.ForEach(func(k, v []byte) error {
			var r struct {
				Pinned bool `json:"pinned"`
			}
			if json.Unmarshal(v, &r) != nil || !r.Pinned {
				return nil
			}
			return pinned.Put(k, pinnedMark)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("build history: %w", err)
	}
	return &Service{db: db, active: map[string]Record{}, listeners: map[*listener]struct{}{}}, nil
}

// Start records a build that begins (in memory only) and tells the
// listeners.
func (s *Service) Start(_ context.Context, r Record) {
	r.Status = StatusRunning
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.active[r.Ref]; !ok {
		s.order = append(s.order, r.Ref)
	}
	s.active[r.Ref] = r
	s.notify(Event{Type: EventStarted, Record: r})
}

// Finish records a build that ended: it leaves the running builds, is
// written to the database (dropping the oldest unpinned records beyond
// Limit) and the listeners are told.
func (s *Service) Finish(_ context.Context, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropActive(r.Ref)
	err = s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		if err := bk.Put(key(seq), b); err != nil {
			return err
		}
		return trim(tx)
	})
	if err != nil {
		return fmt.Errorf("build history: %w", err)
	}
	s.notify(Event{Type: EventCompleted, Record: r})
	return nil
}

func (s *Service) dropActive(ref string) {
	if _, ok := s.active[ref]; !ok {
		return
	}
	delete(s.active, ref)
	for i, x := range s.order {
		if x == ref {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

func key(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// trim drops the oldest unpinned records beyond Limit. It reads keys
// only: it runs after every build.
func trim(tx *bolt.Tx) error {
	bk, pinned := tx.Bucket(bucket), tx.Bucket(pinnedBucket)
	n := 0
	c := bk.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if pinned.Get(k) == nil {
			n++
		}
	}
	var drop [][]byte
	for k, _ := c.First(); k != nil && n > Limit; k, _ = c.Next() {
		if pinned.Get(k) == nil {
			drop = append(drop, append([]byte(nil), k...))
			n--
		}
	}
	for _, k := range drop {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// decode reads a stored record; without trace, its steps are skipped,
// not decoded (a trace is up to a few hundred KiB).
func decode(v []byte, trace bool) (Record, error) {
	if trace {
		var r Record
		err := json.Unmarshal(v, &r)
		return r, err
	}
	var s struct {
		Record
		Trace skipJSON `json:"trace"`
	}
	err := json.Unmarshal(v, &s)
	return s.Record, err
}

// skipJSON decodes any JSON value into nothing.
type skipJSON struct{}

func (*skipJSON) UnmarshalJSON([]byte) error { return nil }

// List returns finished records, newest first.
func (s *Service) List(_ context.Context, f Filter) ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			r, err := decode(v, f.Trace)
			if err != nil {
				return err
			}
			if !f.match(r) {
				continue
			}
			out = append(out, r)
			if f.Limit > 0 && len(out) >= f.Limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("build history: %w", err)
	}
	return out, nil
}

// Active returns the running builds, in the order they started.
func (s *Service) Active() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.order))
	for _, ref := range s.order {
		out = append(out, s.active[ref])
	}
	return out
}

// Get returns the record of the build ref: running or finished. An
// unknown ref is an errdefs.ErrNotFound error.
func (s *Service) Get(ctx context.Context, ref string) (Record, error) {
	s.mu.Lock()
	r, ok := s.active[ref]
	s.mu.Unlock()
	if ok {
		return r, nil
	}
	recs, err := s.List(ctx, Filter{Ref: ref, Limit: 1, Trace: true})
	if err != nil {
		return Record{}, err
	}
	if len(recs) == 0 {
		return Record{}, notFound(ref)
	}
	return recs[0], nil
}

func notFound(ref string) error {
	return errdefs.NotFoundf("build %q is not in the build history", ref)
}

// Update changes a finished record: Pinned, when set, pins or unpins it;
// Delete removes it.
type Update struct {
	Pinned *bool
	Delete bool
}

// Update applies u to the finished record of ref (its newest one). An
// unknown ref is an errdefs.ErrNotFound error; a build still running
// cannot be changed (errdefs.ErrFailedPrecondition).
func (s *Service) Update(_ context.Context, ref string, u Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.active[ref]; ok {
		return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("build %q is still running", ref))
	}
	var ev *Event
	err := s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		c := bk.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if r.Ref != ref {
				continue
			}
			k = append([]byte(nil), k...)
			pinned := tx.Bucket(pinnedBucket)
			if u.Delete {
				ev = &Event{Type: EventDeleted, Record: r}
				if err := pinned.Delete(k); err != nil {
					return err
				}
				return bk.Delete(k)
			}
			if u.Pinned != nil {
				r.Pinned = *u.Pinned
				var err error
				if r.Pinned {
					err = pinned.Put(k, pinnedMark)
				} else {
					err = pinned.Delete(k)
				}
				if err != nil {
					return err
				}
			}
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := bk.Put(k, b); err != nil {
				return err
			}
			return trim(tx)
		}
		return notFound(ref)
	})
	if err != nil {
		if errdefs.IsNotFound(err) {
			return err
		}
		return fmt.Errorf("build history: %w", err)
	}
	if ev != nil {
		s.notify(*ev)
	}
	return nil
}
