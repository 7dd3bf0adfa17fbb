package filesync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/session"
)

// tmpPrefix names Receive's temporary directory inside dest. Leftovers of
// an interrupted sync are removed by the next one (the client has no such
// entry).
const tmpPrefix = ".kiln-sync-"

// modeBits are the mode bits a sync carries besides the type.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

type kind uint8

const (
	kindDir kind = iota + 1
	kindFile
	kindSymlink
	kindFIFO
)

// Receive makes dest mirror the client's directory, reading the client's
// answer to a SyncRequest from conn and asking it for the files whose
// metadata differ from what dest holds. dest is created if missing. Files
// are written to a temporary file and renamed into place; directories and
// links are created; entries the client no longer has are removed. A
// client that sends an unsafe or out-of-order path gets an error in the
// errdefs.ErrInvalidArgument class and dest is left as far as the sync
// got (still safe to sync into again).
func Receive(ctx context.Context, dest string, conn ReceiveConn, opts ...Option) (session.SyncStats, error) {
	cfg := newConfig(opts)
	dest, err := filepath.Abs(dest)
	if err != nil {
		return session.SyncStats{}, fmt.Errorf("sync into %s: %w", dest, err)
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return session.SyncStats{}, fmt.Errorf("sync into %s: %w", dest, err)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return session.SyncStats{}, fmt.Errorf("sync into %s: %w", dest, err)
	}
	defer root.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req := newRequester(ctx, conn.ID, conn.Request, cfg.batchSize)
	r := &receiver{
		id: conn.ID, dest: dest, root: root,
		seen:    map[string]kind{},
		pending: map[uint32]pendingFile{},
		dirty:   map[string]bool{},
		open:    map[uint32]*openFile{},
		req:     req,
	}
	err = r.run(ctx, conn)
	if err == nil {
		err = r.finish()
	}
	if err != nil {
		// Tell the client to stop, then wait for the requester.
		req.abort()
		cancel(err)
	}
	req.wait()
	for _, of := range r.open {
		of.f.Close()
	}
	if r.tmpRel != "" {
		if rerr := os.RemoveAll(filepath.Join(dest, r.tmpRel)); rerr != nil && err == nil {
			err = fmt.Errorf("sync: %w", rerr)
		}
	}
	if err != nil {
		return r.stats, err
	}
	r.stats.Files = len(r.seen)
	r.stats.Unchanged = !r.changed
	return r.stats, nil
}

// maxOpenFiles bounds the files a client may send at once.
const maxOpenFiles = 64

// openFile is a requested file being written to its temporary name.
type openFile struct {
	f       *os.File
	tmp     string
	written int64
}

type pendingFile struct {
	path  string
	mode  fs.FileMode
	mtime int64
	size  int64
}

// hardLink is a regular file the client sent as another name of an
// earlier one.
type hardLink struct{ path, target string }

type dirMeta struct {
	path  string
	mode  fs.FileMode
	mtime int64
	fix   bool // mode or mtime differ, or the directory is new
}

type receiver struct {
	id     uint32
	dest   string
	root   *os.Root
	tmpRel string // temporary directory, relative to dest; "" until needed
	tmpN   int

	index   uint32                 // stat index of the next entry
	seen    map[string]kind        // every path the client sent
	pending map[uint32]pendingFile // requested, not yet complete
	toReq   []uint32               // found by the current batch
	dirs    []dirMeta
	dirty   map[string]bool // directories whose entries changed
	changed bool            // dest was modified (see SyncStats.Unchanged)
	links   []hardLink      // made once every file is written

	// the files being received, by entry index: Kiln's client sends one
	// file at a time, BuildKit's (fsutil, through daemon/buildkit) up to
	// four at once, their chunks interleaved
	open map[uint32]*openFile

	req   *requester
	stats session.SyncStats
}

func (r *receiver) run(ctx context.Context, conn ReceiveConn) error {
	stats, files := conn.Stats, conn.Files
	gone := func() error {
		return errdefs.WithClass(errdefs.ErrUnavailable, errors.New("sync: the client went away"))
	}
	for stats != nil || len(r.pending) > 0 {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case err := <-r.req.errc:
			return fmt.Errorf("sync: request files: %w", err)
		case m, ok := <-stats:
			if !ok {
				return gone()
			}
			if m.GetId() != r.id {
				return errdefs.Invalidf("sync: stats for sync %d on sync %d", m.GetId(), r.id)
			}
			if m.GetError() != "" {
				return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("client: %s", m.GetError()))
			}
			for _, st := range m.GetStats() {
				if err := r.apply(st); err != nil {
					return err
				}
				r.index++
			}
			r.req.add(r.toReq, m.GetDone())
			r.toReq = r.toReq[:0]
			if m.GetDone() {
				stats = nil
			}
		case d, ok := <-files:
			if !ok {
				return gone()
			}
			if err := r.write(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPath validates a path from the client: relative, clean,
// slash-separated, inside the directory.
func checkPath(p string) error {
	switch {
	case p == "" || p == ".":
		return errors.New("empty path")
	case strings.HasPrefix(p, "/"):
		return errors.New("absolute path")
	case strings.ContainsRune(p, 0):
		return errors.New("NUL byte in path")
	case path.Clean(p) != p:
		return errors.New("path is not clean")
	case p == ".." || strings.HasPrefix(p, "../"):
		return errors.New("path leaves the directory")
	}
	return nil
}

func (r *receiver) invalid(p, format string, args ...any) error {
	return errdefs.Invalidf("sync: %q from client: %s", p, fmt.Sprintf(format, args...))
}

// apply compares one entry with dest, fixes directories and links at once
// and queues regular files that differ.
func (r *receiver) apply(st *api.FileStat) error {
	p := string(st.GetPath())
	if err := checkPath(p); err != nil {
		return r.invalid(p, "%v", err)
	}
	if _, dup := r.seen[p]; dup {
		return r.invalid(p, "sent twice")
	}
	if dir := path.Dir(p); dir != "." {
		switch k := r.seen[dir]; k {
		case kindDir:
		case 0:
			return r.invalid(p, "its directory was not sent before it")
		default:
			return r.invalid(p, "its parent is not a directory (a path through a symbolic link?)")
		}
	} else if r.tmpRel != "" && p == r.tmpRel {
		return r.invalid(p, "reserved name")
	}
	mode := fs.FileMode(st.GetMode())
	full := filepath.Join(r.dest, filepath.FromSlash(p))
	fi, err := os.Lstat(full)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sync: %w", err)
	}
	have := err == nil
	switch mode.Type() {
	case fs.ModeDir:
		r.seen[p] = kindDir
		if have && fi.IsDir() {
			fix := fi.Mode()&modeBits != mode&modeBits || fi.ModTime().UnixNano() != st.GetModTime()
			r.dirs = append(r.dirs, dirMeta{path: p, mode: mode, mtime: st.GetModTime(), fix: fix})
			return nil
		}
		if have {
			if err := r.root.RemoveAll(p); err != nil {
				return fmt.Errorf("sync: %w", err)
			}
		}
		if err := r.root.Mkdir(p, 0o700); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		r.touch(p)
		r.dirs = append(r.dirs, dirMeta{path: p, mode: mode, mtime: st.GetModTime(), fix: true})
	case fs.ModeSymlink:
		r.seen[p] = kindSymlink
		if have && fi.Mode().Type() == fs.ModeSymlink && fi.ModTime().UnixNano() == st.GetModTime() {
			if t, err := os.Readlink(full); err == nil && t == string(st.GetLinkname()) {
				return nil
			}
		}
		tmp, err := r.tmpName()
		if err != nil {
			return err
		}
		if err := os.Symlink(string(st.GetLinkname()), filepath.Join(r.dest, tmp)); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		if err := lutimes(filepath.Join(r.dest, tmp), st.GetModTime()); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		if have && fi.IsDir() {
			if err := r.root.RemoveAll(p); err != nil {
				return fmt.Errorf("sync: %w", err)
			}
		}
		if err := r.root.Rename(tmp, p); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		r.touch(p)
	case 0:
		if t := string(st.GetLinkname()); t != "" {
			// Another name of a file sent before: linked in finish,
			// once that file is written.
			if err := checkPath(t); err != nil {
				return r.invalid(p, "hard link to %q: %v", t, err)
			}
			if r.seen[t] != kindFile {
				return r.invalid(p, "hard link to %q, which is not a regular file sent before it", t)
			}
			r.seen[p] = kindFile
			r.links = append(r.links, hardLink{path: p, target: t})
			return nil
		}
		r.seen[p] = kindFile
		if st.GetSize() < 0 {
			return r.invalid(p, "negative size")
		}
		if have && fi.Mode().IsRegular() && fi.Size() == st.GetSize() &&
			fi.ModTime().UnixNano() == st.GetModTime() && fi.Mode()&modeBits == mode&modeBits {
			return nil
		}
		if have && fi.IsDir() {
			if err := r.root.RemoveAll(p); err != nil {
				return fmt.Errorf("sync: %w", err)
			}
			r.touch(p)
		}
		r.pending[r.index] = pendingFile{path: p, mode: mode, mtime: st.GetModTime(), size: st.GetSize()}
		r.toReq = append(r.toReq, r.index)
	case fs.ModeNamedPipe:
		r.seen[p] = kindFIFO
		if have && fi.Mode().Type() == fs.ModeNamedPipe && fi.Mode()&modeBits == mode&modeBits &&
			fi.ModTime().UnixNano() == st.GetModTime() {
			return nil
		}
		return r.makeFIFO(p, mode, st.GetModTime(), have && fi.IsDir())
	default:
		return r.invalid(p, "unsupported file type %s", mode.Type())
	}
	return nil
}

// makeFIFO makes the named pipe p in the temporary directory and renames
// it into place (replacing a directory there when replaceDir is set).
func (r *receiver) makeFIFO(p string, mode fs.FileMode, mtime int64, replaceDir bool) error {
	tmp, err := r.tmpName()
	if err != nil {
		return err
	}
	if err := mkfifo(filepath.Join(r.dest, tmp)); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := r.root.Chmod(tmp, mode&modeBits); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	mt := time.Unix(0, mtime)
	if err := r.root.Chtimes(tmp, mt, mt); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if replaceDir {
		if err := r.root.RemoveAll(p); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	if err := r.root.Rename(tmp, p); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	r.touch(p)
	return nil
}

// makeLinks makes the hard links the client sent, where dest does not
// have them already.
func (r *receiver) makeLinks() error {
	for _, l := range r.links {
		target, err := r.root.Lstat(l.target)
		if err != nil {
			return fmt.Errorf("sync: hard link %s: %w", l.path, err)
		}
		if !target.Mode().IsRegular() {
			return r.invalid(l.path, "hard link to %q, which is not a regular file", l.target)
		}
		have, err := r.root.Lstat(l.path)
		if err == nil && os.SameFile(have, target) {
			continue
		}
		tmp, err := r.tmpName()
		if err != nil {
			return err
		}
		if err := r.root.Link(l.target, tmp); err != nil {
			return fmt.Errorf("sync: hard link %s: %w", l.path, err)
		}
		if have != nil && have.IsDir() {
			if err := r.root.RemoveAll(l.path); err != nil {
				return fmt.Errorf("sync: %w", err)
			}
		}
		if err := r.root.Rename(tmp, l.path); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		r.touch(l.path)
	}
	return nil
}

// tmpName returns a new name in the temporary directory (relative to dest),
// creating the directory on first use: a sync that changes nothing creates
// nothing.
func (r *receiver) tmpName() (string, error) {
	if r.tmpRel == "" {
		tmp, err := os.MkdirTemp(r.dest, tmpPrefix)
		if err != nil {
			return "", fmt.Errorf("sync: %w", err)
		}
		r.tmpRel = filepath.Base(tmp)
	}
	r.tmpN++
	return r.tmpRel + "/" + strconv.Itoa(r.tmpN), nil
}

// touch records that p changed, and so its directory. Every change to
// dest but a directory's own mode and time goes through here.
func (r *receiver) touch(p string) {
	r.changed = true
	if d := path.Dir(p); d != "." {
		r.dirty[d] = true
	}
}

// write stores one chunk of a requested file.
func (r *receiver) write(d *api.FileData) error {
	if d.GetId() != r.id {
		return errdefs.Invalidf("sync: file data for sync %d on sync %d", d.GetId(), r.id)
	}
	pf, ok := r.pending[d.GetIndex()]
	if !ok {
		return errdefs.Invalidf("sync: file data for entry %d, which was not requested", d.GetIndex())
	}
	if d.GetError() != "" {
		return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("client: %s", d.GetError()))
	}
	of := r.open[d.GetIndex()]
	if of == nil {
		if len(r.open) >= maxOpenFiles {
			return errdefs.Invalidf("sync: data for more than %d files at once", maxOpenFiles)
		}
		tmp, err := r.tmpName()
		if err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(r.dest, tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		of = &openFile{f: f, tmp: tmp}
		r.open[d.GetIndex()] = of
	}
	if of.written+int64(len(d.GetData())) > pf.size {
		return r.invalid(pf.path, "more data than its size (%d bytes)", pf.size)
	}
	if _, err := of.f.Write(d.GetData()); err != nil {
		return fmt.Errorf("sync: write %s: %w", pf.path, err)
	}
	of.written += int64(len(d.GetData()))
	if !d.GetEof() {
		return nil
	}
	delete(r.open, d.GetIndex())
	err := of.f.Chmod(pf.mode & modeBits)
	if cerr := of.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync: write %s: %w", pf.path, err)
	}
	mt := time.Unix(0, pf.mtime)
	if err := os.Chtimes(filepath.Join(r.dest, of.tmp), mt, mt); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := r.root.Rename(of.tmp, pf.path); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	r.touch(pf.path)
	delete(r.pending, d.GetIndex())
	r.stats.Transferred++
	r.stats.Bytes += of.written
	return nil
}

// finish removes what the client no longer has and sets the directories'
// modes and times (last, since changing an entry changes its directory's
// time).
func (r *receiver) finish() error {
	if err := r.makeLinks(); err != nil {
		return err
	}
	err := filepath.WalkDir(r.dest, func(full string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if full == r.dest {
			return nil
		}
		rel := filepath.ToSlash(full[len(r.dest)+1:])
		if r.tmpRel != "" && rel == r.tmpRel {
			return filepath.SkipDir
		}
		if _, ok := r.seen[rel]; ok {
			return nil
		}
		if err := r.root.RemoveAll(rel); err != nil {
			return err
		}
		r.stats.Removed++
		r.touch(rel)
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync: remove stale entries: %w", err)
	}
	for i := len(r.dirs) - 1; i >= 0; i-- {
		d := r.dirs[i]
		if !d.fix && !r.dirty[d.path] {
			continue
		}
		r.changed = true
		if err := r.root.Chmod(d.path, d.mode&modeBits); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		mt := time.Unix(0, d.mtime)
		if err := r.root.Chtimes(d.path, mt, mt); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	return nil
}
