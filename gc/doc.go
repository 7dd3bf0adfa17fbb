// Package gc reports what the daemon stores and removes what a policy
// selects, keeping the disk under the configured size.
//
// A Collector looks at six kinds of things under the daemon root:
//
//   - cache records (TypeRecord): the step cache, each naming the snapshot
//     that holds its result; a record's size is its snapshot's usage;
//   - snapshots no record names (TypeSnapshot): base image layers below
//     the top one, layers of images `kiln run` unpacked, leftovers;
//   - content blobs (TypeBlob): image manifests, configs and layers, and
//     layer blobs exporters made from snapshots;
//   - cache mounts (TypeCacheMount) and kept build contexts (TypeContext).
//
// # What prune keeps
//
// Prune deletes the cache records its Policy selects, then every committed
// snapshot that nothing needs any more, children before parents. A
// snapshot is needed when a remaining record names it, a running build or
// container holds it (Config.InUse), an image in the image store is made
// of it (its layers' chain IDs), or a needed snapshot sits on it. Active
// snapshots (steps and containers running) are never touched. Then it
// deletes the blobs no stored image and no remaining snapshot's layer
// labels reference, the cache mounts no step holds that no step used since
// the cutoff, and the build contexts no build used since the cutoff.
//
// Cache mounts are pruned with or without Policy.All, as BuildKit prunes
// exec.cachemount records; with Policy.KeepBytes they join the records in
// one least-recently-used order (see Policy). Removing one while a step is
// about to mount it is safe: the cache mounts (ops/exec's) remove under
// the lock their Get takes, and the step gets a new, empty directory.
//
// Without Policy.All, records whose result is a pulled base image layer
// stay (BuildKit keeps its "internal" records without --all), so the next
// build does not download its base images again.
//
// While anything runs (a snapshot is held or active, or a blob is being
// written), snapshots and blobs that no record or image references but
// that changed within Config.Grace are kept too: a build or pull may be
// about to reference them.
//
// A build that looks a record up at the moment prune deletes it sees a
// miss and runs the step again (the solver treats a vanished result as a
// stale record). Prune runs one at a time per Collector.
//
// This package imports cache, content, imagestore and core from Kiln; the
// cache mounts and kept contexts are its own types (CacheMount, Context),
// which the engine fills from ops/exec and source/local. The engine's disk
// service wires it and hands its Items to the API edges.
package gc
