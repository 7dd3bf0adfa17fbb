// Package redistest starts a real redis-server on 127.0.0.1 for tests and
// benchmarks (Debian's redis-server package), without persistence.
package redistest
