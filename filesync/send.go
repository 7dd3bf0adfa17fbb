package filesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
)

// errAborted stops the walk when the daemon ends the sync early.
var errAborted = errors.New("sync ended by the daemon")

// Send answers the daemon's SyncRequest req for the directory root: it
// walks root (filtered by req's patterns), sends the metadata in batches,
// and serves the daemon's FileRequests with the files' contents. It reads
// a file only when the daemon asks for it, and never follows a symbolic
// link (links are sent as links). It returns when the daemon sent its last
// FileRequest (done), with nil also when the daemon ended the sync before
// the walk was over; if root cannot be read it tells the daemon (a
// SyncStats with error) and returns the error.
func Send(ctx context.Context, root string, req *api.SyncRequest, conn SendConn, opts ...Option) error {
	cfg := newConfig(opts)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	s := &sender{id: req.GetId(), cfg: cfg, send: conn.Send}
	q := newRequestQueue()
	go q.feed(ctx, conn.Requests)

	walkDone := make(chan error, 1)
	go func() {
		err := s.walk(ctx, root, req)
		if err != nil && !errors.Is(err, errAborted) && ctx.Err() == nil {
			// Tell the daemon why its sync fails; it gives up on it.
			_ = s.out(&api.BuildClientMessage{Msg: &api.BuildClientMessage_Stats{Stats: &api.SyncStats{
				Id: s.id, Error: err.Error(), Done: true,
			}}})
			cancel(err)
		}
		walkDone <- err
	}()

	serveErr := s.serve(ctx, root, q)
	cancel(errAborted)
	walkErr := <-walkDone
	switch {
	case walkErr != nil && !errors.Is(walkErr, errAborted):
		return walkErr
	case serveErr != nil && !errors.Is(serveErr, errAborted):
		return serveErr
	}
	return nil
}

// sender is one Send call's state.
type sender struct {
	id   uint32
	cfg  config
	send func(*api.BuildClientMessage) error

	outMu sync.Mutex

	mu      sync.Mutex
	entries []sentEntry // by stat index
}

type sentEntry struct {
	path    string // slash-separated, relative
	size    int64
	regular bool
}

func (s *sender) out(m *api.BuildClientMessage) error {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.send(m)
}

// frame is a directory on the walk's path from the root.
type frame struct {
	rel     string
	dirent  fs.DirEntry
	state   matchState
	emitted bool
}

// walk sends root's metadata as SyncStats batches, the last with done set.
func (s *sender) walk(ctx context.Context, root string, req *api.SyncRequest) error {
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("read context %s: %w", req.GetName(), err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("read context %s: %w", req.GetName(), err)
	}
	if !fi.IsDir() {
		return errdefs.Invalidf("read context %s: %s is not a directory", req.GetName(), root)
	}
	include := fromBytes(req.GetIncludePatterns())
	if follow := fromBytes(req.GetFollowPaths()); len(follow) > 0 {
		include = append(include, followPaths(root, follow)...)
	}
	f, err := newFilter(include, fromBytes(req.GetExcludePatterns()))
	if err != nil {
		return err
	}

	stack := []*frame{{}} // the root
	batch := make([]*api.FileStat, 0, s.cfg.batchSize)
	flush := func(done bool) error {
		m := &api.SyncStats{Id: s.id, Stats: batch, Done: done}
		batch = make([]*api.FileStat, 0, s.cfg.batchSize)
		return s.out(&api.BuildClientMessage{Msg: &api.BuildClientMessage_Stats{Stats: m}})
	}
	links := map[fileID]string{} // first path of each hard-linked file
	emit := func(full, rel string, d fs.DirEntry) error {
		st, ok, err := fileStat(full, rel, d, links)
		if err != nil || !ok {
			return err
		}
		s.mu.Lock()
		s.entries = append(s.entries, sentEntry{path: rel, size: st.Size, regular: d.Type().IsRegular() && len(st.Linkname) == 0})
		s.mu.Unlock()
		batch = append(batch, st)
		if len(batch) >= s.cfg.batchSize {
			return flush(false)
		}
		return nil
	}
	// emitParents sends the directories on the stack that were walked
	// without being selected themselves (their contents may be).
	emitParents := func() error {
		for _, fr := range stack[1:] {
			if !fr.emitted {
				fr.emitted = true
				if err := emit(filepath.Join(root, filepath.FromSlash(fr.rel)), fr.rel, fr.dirent); err != nil {
					return err
				}
			}
		}
		return nil
	}

	n := 0
	err = filepath.WalkDir(root, func(full string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if full == root {
			return nil
		}
		if n++; n%256 == 0 {
			if err := context.Cause(ctx); err != nil {
				return err
			}
		}
		rel := full[len(root):]
		if !os.IsPathSeparator(root[len(root)-1]) {
			rel = rel[1:]
		}
		rel = filepath.ToSlash(rel)
		parent := path.Dir(rel)
		if parent == "." {
			parent = ""
		}
		for len(stack) > 1 && stack[len(stack)-1].rel != parent {
			stack = stack[:len(stack)-1]
		}
		st, err := f.match(rel, &stack[len(stack)-1].state)
		if err != nil {
			return err
		}
		selected := st.included && !st.excluded
		if d.IsDir() {
			if !f.walkDir(rel, st) {
				return filepath.SkipDir
			}
			stack = append(stack, &frame{rel: rel, dirent: d, state: st})
			if !selected {
				return nil
			}
			return emitParents()
		}
		if !selected || !sendable(d.Type()) {
			return nil
		}
		if err := emitParents(); err != nil {
			return err
		}
		return emit(full, rel, d)
	})
	if err != nil {
		if ctxErr := context.Cause(ctx); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("read context %s: %w", req.GetName(), err)
	}
	return flush(true)
}

// sendable reports whether entries of type t cross the wire.
func sendable(t fs.FileMode) bool {
	return t.IsRegular() || t&fs.ModeSymlink != 0 || t.IsDir() || t&fs.ModeNamedPipe != 0
}

// fileStat describes one entry; ok is false if it vanished meanwhile. A
// regular file with another name sent before (links records the first
// name of each) is sent as a hard link to it: Linkname set, no data.
func fileStat(full, rel string, d fs.DirEntry, links map[fileID]string) (*api.FileStat, bool, error) {
	fi, err := d.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	st := &api.FileStat{
		Path:    []byte(rel),
		Mode:    uint32(wireMode(fi.Mode())),
		ModTime: fi.ModTime().UnixNano(),
	}
	st.Uid, st.Gid = owner(fi)
	switch {
	case fi.Mode().IsRegular():
		st.Size = fi.Size()
		if id, ok := linkID(fi); ok {
			if first, seen := links[id]; seen {
				st.Linkname = []byte(first)
			} else {
				links[id] = rel
			}
		}
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		st.Linkname = []byte(filepath.ToSlash(target))
	}
	return st, true, nil
}

// serve answers FileRequests until the daemon says it is done.
func (s *sender) serve(ctx context.Context, root string, q *requestQueue) error {
	for {
		idx, ok, done, err := q.pop()
		if err != nil {
			return err
		}
		if ok {
			if err := s.serveFile(ctx, root, idx); err != nil {
				return err
			}
			continue
		}
		if done {
			return nil
		}
		select {
		case <-q.notify:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// serveFile sends the content of the file at stat index idx in chunks. A
// file that cannot be read is reported to the daemon in FileData.error.
func (s *sender) serveFile(ctx context.Context, root string, idx uint32) error {
	s.mu.Lock()
	var e sentEntry
	ok := int(idx) < len(s.entries)
	if ok {
		e = s.entries[idx]
	}
	s.mu.Unlock()
	fail := func(msg string) error {
		return s.out(&api.BuildClientMessage{Msg: &api.BuildClientMessage_File{File: &api.FileData{
			Id: s.id, Index: idx, Eof: true, Error: msg,
		}}})
	}
	if !ok || !e.regular {
		return fail(fmt.Sprintf("entry %d is not a regular file of this sync", idx))
	}
	f, err := openNoFollow(filepath.Join(root, filepath.FromSlash(e.path)))
	if err != nil {
		return fail(fmt.Sprintf("open %s: %v", e.path, err))
	}
	defer f.Close()
	// Exactly the size the stat announced is sent: the daemon records
	// that stat with the file. A file that shrank meanwhile is sent as it
	// is; the next sync sees its size differ and fetches it again.
	remaining := e.size
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		buf := make([]byte, min(remaining, int64(s.cfg.chunkSize)))
		n, err := io.ReadFull(f, buf)
		remaining -= int64(n)
		short := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !short {
			return fail(fmt.Sprintf("read %s: %v", e.path, err))
		}
		eof := remaining == 0 || short
		msg := &api.FileData{Id: s.id, Index: idx, Data: buf[:n], Eof: eof}
		if err := s.out(&api.BuildClientMessage{Msg: &api.BuildClientMessage_File{File: msg}}); err != nil {
			return err
		}
		if eof {
			return nil
		}
	}
}

// requestQueue buffers the daemon's FileRequests so that reading them never
// waits for a file to be sent (that could deadlock a stream whose windows
// are full in both directions).
type requestQueue struct {
	notify chan struct{}

	mu   sync.Mutex
	idx  []uint32
	done bool
	err  error
}

func newRequestQueue() *requestQueue {
	return &requestQueue{notify: make(chan struct{}, 1)}
}

func (q *requestQueue) feed(ctx context.Context, in <-chan *api.FileRequest) {
	for {
		select {
		case r, ok := <-in:
			q.mu.Lock()
			if !ok {
				if !q.done {
					q.err = errdefs.WithClass(errdefs.ErrUnavailable, errors.New("sync: the daemon went away"))
				}
				q.mu.Unlock()
				q.wake()
				return
			}
			q.idx = append(q.idx, r.GetIndexes()...)
			q.done = q.done || r.GetDone()
			q.mu.Unlock()
			q.wake()
		case <-ctx.Done():
			return
		}
	}
}

func (q *requestQueue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// pop returns the next requested index (ok), or done when there is none
// and the daemon will send no more.
func (q *requestQueue) pop() (idx uint32, ok, done bool, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.idx) > 0 {
		idx, q.idx = q.idx[0], q.idx[1:]
		return idx, true, false, nil
	}
	return 0, false, q.done, q.err
}
