// Package e2e holds Kiln's end-to-end tests: they build the kilnd and kiln
// binaries once, start kilnd on a temporary root and drive it with kiln as
// a user would, against real runc containers, overlay snapshots and a real
// registry (Debian's docker-registry) on 127.0.0.1. Nothing reaches the
// internet: the base image is made from Debian's busybox-static and
// imported with kiln image import.
//
// The tests need root (runc) and are skipped under -short.
package e2e
