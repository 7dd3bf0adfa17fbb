// Package git is the git source of ADD <git url> and of git build
// contexts: an ops.Op whose result is a snapshot of a repository at a
// commit, and the Cache of bare repositories it fetches into, shared
// across builds.
//
// Cache keys follow docs/dev/solver.md: CacheMap resolves the ref to a
// commit with `git ls-remote` (a commit id needs no request) and the key is
// the op digest plus the commit, so a new commit on a branch is a miss and
// an unchanged one a hit. Exec fetches the commit (shallow where the server
// allows) into the cache's bare repository and checks it out.
//
// Git runs as the git binary with a clean environment: no system or user
// configuration, HOME inside the cache, no terminal prompts, only the
// https, http, ssh and git transports (file:// only for tests), hooks off,
// and the daemon's proxy settings. Credentials (an Authorization header, an
// ssh agent socket) come per build through Auth and never appear on a
// command line, in a message or in a kept .git directory.
//
// This package imports graph, ops and core only.
package git
