// Package daemon serves Kiln's gRPC API (api.ControlServer): it opens the
// listeners of [grpc] address (unix sockets and TCP, with TLS or mutual
// TLS), owns the unix sockets' mode and ownership, locks the root directory
// against a second daemon, answers Info from the configuration and the
// machine, and hands builds and storage requests to a Backend (the engine).
//
// Error classes from core/errdefs become gRPC status codes here and only
// here (errors.go); the client package maps them back.
//
// The package imports api, config and core; it never imports the engine:
// cmd/kilnd passes the engine in with WithBackend.
package daemon
