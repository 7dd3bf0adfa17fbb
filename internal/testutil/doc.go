// Package testutil holds the fixtures that Kiln's tests share: a one-layer
// busybox base image built from Debian's busybox-static binary (no test
// reaches the internet), an in-process registry, the real CNCF distribution
// server (Debian's docker-registry) started on 127.0.0.1, a throwaway TLS
// certificate authority and the daemon harness for end-to-end tests.
//
// Functions that take a testing.TB (BusyboxImage, StartRegistry,
// StartDistribution, PushImage, ...) skip the test with a clear message when
// a required binary is missing and clean up after themselves. Their
// counterparts without testing.TB (NewBusyboxImage, NewDistribution, NewCA)
// return errors instead, for the demo and benchmark tools.
//
// From Kiln it imports core/errdefs, session and filesync (Session, the
// in-process session.Session, syncs directories with filesync.Local) and
// snapshot (the busybox rootfs is unpacked into a snapshotter). Tests of
// those packages and of the packages below them cannot use it; their
// root-only gates are internal/testroot's, their snapshot fixtures
// internal/snaptest's.
package testutil
