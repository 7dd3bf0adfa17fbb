// Package daemon serves Kiln's gRPC API (api.ControlServer): it opens the
// listeners of [grpc] address (unix sockets and TCP, with TLS or mutual
// TLS), owns the unix sockets' mode and ownership, locks the root directory
// against a second daemon, answers Info from the configuration and the
// machine, and hands every other request to the engine's services
// (Services: builds, images, runs, disk, history, shared cache records).
//
// It is an edge and nothing more: each RPC converts the api request to the
// typed request of a service, calls it, and converts the answer back;
// error classes from core/errdefs become gRPC status codes here and only
// here (errors.go), and the client package maps them back. What a request
// means (validation, storage, messages) is the service's.
//
// The package imports api, config, the engine's services (for their types)
// and the packages of the Build stream (session, filesync, progress); cmd/
// kilnd passes the services in with WithServices(EngineServices(eng)).
package daemon
