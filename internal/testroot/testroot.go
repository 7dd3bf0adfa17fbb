// Package testroot is the one gate of root-only tests: Require skips a
// test that is not run as root, RequireSlow also skips it with -short
// (tests that run containers or real builds). `go test -short ./...` thus
// passes on a laptop without root, and the full suite, as root, runs
// everything.
//
// It imports only the standard library, so that every package's tests,
// the lowest included, can use it.
package testroot

import (
	"os"
	"testing"
)

// Require skips tb unless it runs as root; why says what needs root
// ("mounts snapshots").
func Require(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skipf("needs root: %s", why)
	}
}

// RequireSlow is Require, and skips tb in -short mode too.
func RequireSlow(tb testing.TB, why string) {
	tb.Helper()
	if testing.Short() {
		tb.Skipf("slow (%s): skipped in -short mode", why)
	}
	Require(tb, why)
}
