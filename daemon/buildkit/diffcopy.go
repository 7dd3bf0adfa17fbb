package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	fstypes "github.com/tonistiigi/fsutil/types"
	"google.golang.org/grpc"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/filesync"
	"github.com/kiln-build/kiln/session"
)

// finWait bounds how long a finished sync waits for the client to
// acknowledge its end (fsutil's FIN exchange).
const finWait = 10 * time.Second

// receiveDiffCopy runs Kiln's receiver (filesync.Receive) on a DiffCopy
// stream, translating fsutil's packets: STAT packets become batches of
// FileStats, REQ packets ask for the receiver's requests, DATA packets
// become FileData (an empty one ends its file), and FIN ends the
// exchange once the receiver is done. fsutil numbers entries by their
// place among the STAT packets; entries the receiver does not take
// (device nodes, sockets) are dropped here, so the two numberings are
// mapped.
func receiveDiffCopy(ctx context.Context, stream grpc.ClientStream, dest string) (session.SyncStats, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := &diffCopy{
		stream: stream,
		stats:  make(chan *api.SyncStats, 4),
		files:  make(chan *api.FileData, 64),
		done:   make(chan struct{}),
		fin:    make(chan struct{}),
		byID:   map[uint32]uint32{},
	}
	pumped := make(chan error, 1)
	go func() {
		err := c.pump()
		if err != nil {
			cancel(err)
		}
		pumped <- err
	}()
	st, err := filesync.Receive(ctx, dest, filesync.ReceiveConn{
		Stats: c.stats, Files: c.files, Request: c.request,
	})
	close(c.done)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(err, cause) {
			err = cause
		}
		_ = stream.SendMsg(&fstypes.Packet{Type: fstypes.PACKET_ERR, Data: []byte(err.Error())})
		return st, err
	}
	if err := stream.SendMsg(&fstypes.Packet{Type: fstypes.PACKET_FIN}); err != nil {
		return st, err
	}
	_ = stream.CloseSend()
	select {
	case <-c.fin:
	case err := <-pumped:
		if err != nil {
			return st, err
		}
	case <-time.After(finWait):
		return st, errdefs.WithClass(errdefs.ErrDeadlineExceeded, fmt.Errorf("the client did not end the transfer within %s", finWait))
	}
	return st, nil
}

// diffCopy is one DiffCopy stream seen as a filesync.ReceiveConn.
type diffCopy struct {
	stream grpc.ClientStream
	stats  chan *api.SyncStats
	files  chan *api.FileData
	done   chan struct{} // the receiver returned
	fin    chan struct{} // the client answered FIN

	mu   sync.Mutex
	ids  []uint32          // ids[i]: the fsutil id of the receiver's entry i
	byID map[uint32]uint32 // requested fsutil id → the receiver's index
}

// pump reads the client's packets until the stream ends.
func (c *diffCopy) pump() error {
	var (
		batch    []*api.FileStat
		id       uint32
		statDone bool
	)
	for {
		p := &fstypes.Packet{}
		if err := c.stream.RecvMsg(p); err != nil {
			if errors.Is(err, io.EOF) {
				return errdefs.WithClass(errdefs.ErrUnavailable, errors.New("the client ended the transfer early"))
			}
			return err
		}
		switch p.Type {
		case fstypes.PACKET_STAT:
			if statDone {
				return errdefs.Invalidf("sync: an entry after the end of the list")
			}
			if p.Stat == nil {
				statDone = true
				if !c.sendStats(&api.SyncStats{Stats: batch, Done: true}) {
					return nil
				}
				batch = nil
				continue
			}
			if receivable(p.Stat) {
				c.mu.Lock()
				c.ids = append(c.ids, id)
				c.mu.Unlock()
				batch = append(batch, fileStat(p.Stat))
			}
			id++
			if len(batch) == filesync.DefaultBatchSize {
				if !c.sendStats(&api.SyncStats{Stats: batch}) {
					return nil
				}
				batch = nil
			}
		case fstypes.PACKET_DATA:
			c.mu.Lock()
			idx, ok := c.byID[p.ID]
			c.mu.Unlock()
			if !ok {
				return errdefs.Invalidf("sync: file data for entry %d, which was not requested", p.ID)
			}
			select {
			case c.files <- &api.FileData{Index: idx, Data: p.Data, Eof: len(p.Data) == 0}:
			case <-c.done:
				return nil
			}
		case fstypes.PACKET_ERR:
			return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("client: %s", p.Data))
		case fstypes.PACKET_FIN:
			close(c.fin)
			// The client's DiffCopy returns after its FIN.
			for c.stream.RecvMsg(&fstypes.Packet{}) == nil {
			}
			return nil
		}
	}
}

func (c *diffCopy) sendStats(m *api.SyncStats) bool {
	select {
	case c.stats <- m:
		return true
	case <-c.done:
		return false
	}
}

// request asks the client for the receiver's entries.
func (c *diffCopy) request(fr *api.FileRequest) error {
	for _, idx := range fr.GetIndexes() {
		c.mu.Lock()
		if int(idx) >= len(c.ids) {
			c.mu.Unlock()
			return fmt.Errorf("sync: request for entry %d of %d", idx, len(c.ids))
		}
		id := c.ids[idx]
		c.byID[id] = idx
		c.mu.Unlock()
		if err := c.stream.SendMsg(&fstypes.Packet{Type: fstypes.PACKET_REQ, ID: id}); err != nil {
			return err
		}
	}
	return nil
}

// receivable keeps regular files, directories, symlinks and named pipes.
func receivable(st *fstypes.Stat) bool {
	m := os.FileMode(st.Mode)
	return m&(os.ModeDevice|os.ModeCharDevice|os.ModeSocket) == 0
}

// fileStat is an fsutil entry in Kiln's form. The receiver keeps what a
// build's context needs (type, mode bits, size, times, link targets);
// owners and extended attributes are not kept, as for kiln build.
func fileStat(st *fstypes.Stat) *api.FileStat {
	return &api.FileStat{
		Path:     []byte(st.Path),
		Mode:     st.Mode,
		Size:     st.Size,
		ModTime:  st.ModTime,
		Uid:      st.Uid,
		Gid:      st.Gid,
		Linkname: []byte(st.Linkname),
	}
}
