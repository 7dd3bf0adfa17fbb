package filesync

import (
	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/session"
)

// Defaults for the sizes that shape a sync.
const (
	// DefaultBatchSize is the number of FileStats per SyncStats message.
	DefaultBatchSize = 1000
	// DefaultChunkSize is the largest FileData payload. It stays well under
	// gRPC's default 4 MiB message limit.
	DefaultChunkSize = 512 << 10
)

// SendConn is the client's end of one sync.
type SendConn struct {
	// Send delivers one message to the daemon. Send (the function in this
	// package) calls it from one goroutine at a time; the caller must
	// serialize it with any other writer of the same stream.
	Send func(*api.BuildClientMessage) error
	// Requests carries the daemon's FileRequests for this sync's id. The
	// caller closes it when the stream ends.
	Requests <-chan *api.FileRequest
}

// ReceiveConn is the daemon's end of one sync.
type ReceiveConn struct {
	// ID is the sync id the SyncRequest carried.
	ID uint32
	// Stats and Files carry the client's messages for this id. The caller
	// closes them when the stream ends. Receive stops reading them when it
	// returns, so whoever feeds them must not block forever on a full
	// channel (select on a done channel too).
	Stats <-chan *api.SyncStats
	Files <-chan *api.FileData
	// Request sends a FileRequest to the client. Receive calls it from one
	// goroutine at a time, never from the goroutine that reads Stats and
	// Files, so a blocking stream cannot deadlock the sync. It must return
	// (with an error) once the stream is gone: Receive waits for it before
	// returning.
	Request func(*api.FileRequest) error
}

// Option tunes a sync. The zero configuration uses the defaults above.
type Option func(*config)

type config struct {
	batchSize int
	chunkSize int
}

func newConfig(opts []Option) config {
	c := config{batchSize: DefaultBatchSize, chunkSize: DefaultChunkSize}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithBatchSize sets the number of entries per SyncStats message (Send) or
// per FileRequest message (Receive).
func WithBatchSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.batchSize = n
		}
	}
}

// WithChunkSize sets the largest FileData payload Send produces.
func WithChunkSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.chunkSize = n
		}
	}
}

// NewSyncRequest returns the SyncRequest that asks the client for the
// directory name filtered by opts.
func NewSyncRequest(id uint32, name string, opts session.SyncOptions) *api.SyncRequest {
	return &api.SyncRequest{
		Id:              id,
		Name:            name,
		IncludePatterns: toBytes(opts.IncludePatterns),
		ExcludePatterns: toBytes(opts.ExcludePatterns),
		FollowPaths:     toBytes(opts.FollowPaths),
	}
}

// toBytes and fromBytes convert the wire form of patterns and paths
// (bytes: they need not be UTF-8) to and from Go strings.
func toBytes(ss []string) [][]byte {
	if ss == nil {
		return nil
	}
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func fromBytes(bs [][]byte) []string {
	if bs == nil {
		return nil
	}
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}
