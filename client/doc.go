// Package client is the Go client of kilnd's API. New connects (lazily) to
// an address such as unix:///run/kiln/kilnd.sock or tcp://host:1234, with
// optional TLS client certificates; Info and the other calls return errors
// in the core/errdefs classes, translated back from gRPC status codes in
// errors.go, with plain messages ("cannot reach kilnd at ...") instead of
// gRPC jargon.
//
// The package imports api and core only; it does not know about the
// daemon's configuration or the engine.
package client
