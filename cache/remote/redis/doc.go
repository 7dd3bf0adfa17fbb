// Package redis is a shared cache index in Redis (remote.Index): cache
// keys map to the records of every daemon that built them, so that many
// build agents reuse each other's steps.
//
// Schema (docs/dev/cache.md):
//
//	kiln:v1:rec:<cache key>  hash: writer id → record JSON (remote.Record)
//	kiln:v1:build:<ref>      set: the cache keys a build wrote or used
//
// A writer sets only its own field, so records merge and none overwrites
// another's. Every key has the configured time to live; a hit and a write
// refresh it. Values are digests, sizes, times and random ids only.
//
// Every call has bounded timeouts (300 ms to connect, 1 s per command, no
// retries), and a circuit breaker skips Redis for a while after a failure:
// a Redis that is down or slow costs a build at most a second, once.
//
// This package imports cache/remote and go-redis; nothing imports it but
// cmd/kilnd's wiring and cmd/kiln (kiln cache ls --remote).
package redis
