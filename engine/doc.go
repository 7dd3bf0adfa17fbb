// Package engine is a daemon's build engine on one root directory. Open
// assembles it (metadata database, content store, snapshotter, executor,
// worker, solver, caches) and hands out the engine-level services that
// both API edges call, Kiln's own gRPC API (daemon) and BuildKit's:
//
//	Build, Status     run builds and follow a running one's progress (this package)
//	Images()          stored images: list, inspect, tag, rm, import, save, push (engine/images)
//	Runs()            run a container from a stored image (engine/run)
//	Disk()            disk usage, prune, the automatic gc (engine/disk)
//	History()         build records: list, get, update, listen (engine/history)
//	CacheRecords()    the shared caches' records (engine/sharedcache)
//
// Requests and results are typed Go values and errors carry core/errdefs
// classes; nothing here knows gRPC, the api package or the CLI. A build
// runs the frontend, checks entitlements, solves the graph and exports the
// result with the exporters cmd/kilnd registered by name.
package engine
