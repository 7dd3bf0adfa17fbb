package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/progress"
)

var bucketHistory = []byte("history.v1")

// historyLimit is how many finished builds History keeps.
const historyLimit = 200

// BuildRecord is one finished build.
type BuildRecord struct {
	Ref              string            `json:"ref"`
	Created          time.Time         `json:"created"`
	Completed        time.Time         `json:"completed"`
	Status           string            `json:"status"` // completed, failed, canceled
	Error            string            `json:"error,omitempty"`
	Steps            int               `json:"steps"`
	Cached           int               `json:"cached"`
	Target           string            `json:"target,omitempty"`
	DockerfileName   string            `json:"dockerfileName,omitempty"`
	ExporterResponse map[string]string `json:"exporterResponse,omitempty"`
	// StepDetails are the build's steps with their times and, for steps
	// that ran a container, what they used; CriticalPath lists the
	// digests of the longest chain of dependent steps, which took
	// Critical.
	StepDetails  []progress.Step `json:"stepDetails,omitempty"`
	CriticalPath []digest.Digest `json:"criticalPath,omitempty"`
	Critical     time.Duration   `json:"criticalNs,omitempty"`
}

// setSteps records what the collector saw of the build's steps.
func (r *BuildRecord) setSteps(c *progress.Collector) {
	r.StepDetails = c.Steps()
	rep := progress.Analyze(r.StepDetails)
	r.Critical = rep.Critical
	for _, s := range rep.CriticalPath {
		r.CriticalPath = append(r.CriticalPath, s.Digest)
	}
}

// History keeps the records of finished builds in the metadata database,
// the newest historyLimit of them.
type History struct {
	db *bolt.DB
}

// NewHistory returns the history kept in db.
func NewHistory(db *bolt.DB) (*History, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketHistory)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("build history: %w", err)
	}
	return &History{db: db}, nil
}

// Add records r and drops the oldest records beyond the limit.
func (h *History) Add(_ context.Context, r BuildRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return h.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketHistory)
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		if err := bk.Put(k[:], b); err != nil {
			return err
		}
		for bk.Stats().KeyN > historyLimit {
			c := bk.Cursor()
			first, _ := c.First()
			if first == nil {
				break
			}
			if err := bk.Delete(first); err != nil {
				return err
			}
		}
		return nil
	})
}

// List returns records newest first: all of them, or the one with ref.
func (h *History) List(_ context.Context, ref string, limit int) ([]BuildRecord, error) {
	var out []BuildRecord
	err := h.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var r BuildRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if ref != "" && r.Ref != ref {
				continue
			}
			out = append(out, r)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// internalDigest names a progress step that is not a graph vertex.
func internalDigest(name string) digest.Digest {
	return digest.FromString("kiln/internal\x00" + name)
}
