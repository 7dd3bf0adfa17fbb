// Package http is the HTTP(S) source of ADD <url>: an ops.Op whose result
// is a snapshot holding the one downloaded file, and the Cache of
// downloaded bodies it shares across builds.
//
// Cache keys follow docs/dev/solver.md: a key must determine its result, so
// without a pinned checksum CacheMap downloads the body (a conditional GET
// when the cache already has it, reusing the body on 304 Not Modified) and
// the key covers the body's content digest, the file name, mode, owner and
// the Last-Modified time. With a checksum the key is the checksum and no
// request is made until Exec, which verifies the download against it.
//
// The package follows Docker's rules for ADD <url>: redirects are followed
// (at most 10), the daemon's proxy environment is honoured, archives are
// never unpacked, the default mode is 0600 and the mtime is the
// Last-Modified time (the epoch without one).
//
// This package imports graph, ops and core only.
package http
