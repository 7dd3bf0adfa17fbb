// Package local is the local context source: the client's build context
// (or a named local context), synced into a store that keeps the last copy
// of each context so that the next build transfers only what changed.
//
// The pieces:
//
//   - Store keeps one copy per (client id, context path, sync name) under
//     <kiln root>/contexts. Syncs of one copy are serialized; builds reading
//     a copy hold a *Ref; a sync that finds the copy held clones it with
//     hard links and syncs the clone, so builds never wait for each other
//     beyond the sync itself.
//   - Op is the ops.Op for graph.LocalSource. Its cache key is the op's
//     definition (name and patterns); it is content-keyed, and Exec syncs
//     through session.Session.SyncDir and returns a *Ref whose Dir is the
//     copy.
//   - Checksum and Ref.Checksum compute the content digest of the paths a
//     step reads (COPY sources, wildcards allowed): bytes, type, mode and
//     link targets, never mtimes or owners. Ref.Checksum keeps a per-copy
//     cache of file digests keyed by inode, birth time, size, mtime and
//     mode (valid because files in a copy are only ever replaced by
//     rename), persisted next to the copy so a restarted daemon does not
//     read every file again. Whole digests are kept per copy and selector
//     list until a sync changes the copy (session.SyncStats.Unchanged), so
//     a build whose context did not change does not walk it again.
//
// This package imports graph, ops, session, progress and core; it does not
// import filesync (the session implementation does).
package local
