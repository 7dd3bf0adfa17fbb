// Package buildkit serves BuildKit's gRPC API (moby.buildkit.v1.Control
// and the part of the gateway's LLBBridge that docker buildx uses) on
// kilnd's listeners, next to Kiln's own API, so that buildctl and docker
// buildx (remote driver) drive kilnd unchanged.
//
// It is a second thin edge over the engine, like daemon/build.go: it
// converts BuildKit's wire types to engine requests and back, and does no
// build work of its own. BuildKit's session protocol (a Session stream on
// which the daemon calls the client's services back) is BuildKit's own
// code on the client, and on kilnd's side BuildKit's packages used as
// libraries (the filesync, secrets, sshforward and auth clients,
// tonistiigi/fsutil's packets for the directory transfer, which Kiln's
// filesync receiver writes: diffcopy.go) over a connection kilnd opens
// itself (sessions.go: session.Manager's job, with large HTTP/2 windows);
// sessionAdapter implements Kiln's session.Session over it.
//
// What maps where:
//
//	Control.Solve, dockerfile.v0     engine.Build (attrs.go, outputs.go, cache.go); a
//	                                 `# syntax=` line makes the engine run that image
//	Control.Solve, gateway.v0        engine.Build with FrontendOpts (source=IMAGE)
//	Control.Solve, Definition        engine.Build with Definition (frontend/llb)
//	Control.Solve, no frontend       the bridge's Return (buildx), then engine.Build (gateway.go)
//	Control.Status                   progress events as StatusResponse (status.go)
//	Control.Session                  sessions (sessions.go, session.go, filesync.go)
//	ListWorkers, Info, history, du   worker.go, history.go, du.go
//
// Anything Kiln does not do (attestations, session exporters, source
// policies, an unknown exporter or attribute) is answered with an error that names
// it, in the Unimplemented or InvalidArgument class.
//
// The package may import the engine and what the engine's requests name
// (session, progress, frontend, cache/remote, exporter, core); nothing
// below the engine imports it.
package buildkit
