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
// This package imports no Kiln package except core/errdefs, so any package's
// tests can use it.
package testutil
