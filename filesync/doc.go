// Package filesync is the incremental build-context transfer: the client
// sends the metadata of a directory, the daemon compares it with the copy it
// kept from the last build and asks only for the files whose metadata
// differ. It is transport-agnostic: it speaks the api message types
// (SyncRequest, SyncStats, FileRequest, FileData) over channels and
// callbacks that the daemon's session and the client wire to their Build
// stream.
//
// # Protocol
//
// One sync has an id, chosen by the daemon:
//
//	daemon → client  SyncRequest{id, name, include, exclude, follow}
//	client → daemon  SyncStats{id, stats...}      batches, in walk order
//	client → daemon  SyncStats{id, done}          the last batch
//	daemon → client  FileRequest{id, indexes...}  any time after the stats they name
//	daemon → client  FileRequest{id, done}        no more requests
//	client → daemon  FileData{id, index, data, eof}  chunks; one file's chunks are contiguous
//
// Stats are numbered by their position in the SyncStats stream (0-based,
// across batches); FileRequest names files by that index. Entries come in
// filepath.WalkDir order (a directory before its contents, names sorted),
// so a parent always precedes its children. The root itself is not sent.
// Paths are slash-separated and relative. A FileRequest with done set that
// arrives before the client sent its last batch means the daemon gave up:
// the client stops walking.
//
// What crosses the wire: directories, regular files, symbolic links (as
// links, with their target; never followed) and FIFOs. A regular file
// with a name sent before (a hard link) is sent as that: Linkname set to
// the earlier path, no data; the daemon links the two once the first is
// written. Devices and sockets are skipped by the client and refused by
// the daemon. Owners are sent but not applied: COPY
// sets its own owner, and the daemon's copy is owned by the daemon's user.
//
// # Receiving
//
// Receive makes dest mirror the client's directory. An entry whose type,
// permission bits (with setuid, setgid, sticky), size and modification time
// all match is left alone; a regular file that differs is requested, written
// to a temporary file and renamed into place, so a file in dest is never
// modified in place (snapshots may hard-link it). Entries the client no
// longer has are removed. Every path from the client is checked: relative,
// clean, no "..", sent once, and its parent must be a directory the client
// sent earlier in the same sync (so never a symbolic link). On top of that,
// entries of dest are created, renamed and removed through an os.Root, so
// even a bug in those checks cannot make a malicious client write outside
// dest. Memory does not grow with
// file sizes (chunks are streamed to disk); it grows with the number of
// entries (a path and a few words each).
//
// This package imports api, session and core only.
package filesync
