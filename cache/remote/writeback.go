package remote

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how much of a blob may sit in dirty pages before its
// writer waits for the disk.
const writebackChunk = 8 << 20

// writebackFile writes a blob to f and sends it to disk as it goes: every
// full chunk is handed to the kernel's writeback at once
// (sync_file_range), and the writer waits for the chunk before it. Left to
// the kernel, a 200 MB layer piles up as dirty pages that are flushed all
// at once later, and every fsync on the file system meanwhile (the
// daemon's database commits, a build's snapshot commits) waits behind that
// flush. Writing behind the build must not slow the next build down.
// Errors of the hint are ignored: file systems without it (some network
// file systems) just get the kernel's default.
type writebackFile struct {
	f       *os.File
	fd      int
	off     int64
	started int64 // bytes handed to writeback
}

func newWritebackFile(f *os.File) *writebackFile {
	return &writebackFile{f: f, fd: int(f.Fd())}
}

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	for w.off-w.started >= writebackChunk {
		_ = unix.SyncFileRange(w.fd, w.started, writebackChunk, unix.SYNC_FILE_RANGE_WRITE)
		if w.started >= writebackChunk {
			_ = unix.SyncFileRange(w.fd, w.started-writebackChunk, writebackChunk,
				unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		}
		w.started += writebackChunk
	}
	return n, err
}
