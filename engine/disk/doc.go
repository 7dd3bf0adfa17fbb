// Package disk is the engine's disk service: it reports what the daemon
// stores (kiln du, BuildKit's DiskUsage) and prunes it (kiln prune,
// BuildKit's Prune), by a gc.Collector over the daemon's storage, with the
// daemon-wide shared caches reported apart; and it runs the automatic gc
// after builds (cache-size, [[worker.oci.gcpolicy]]).
//
//	d := disk.New(collector, disk.Options{Shared: shared, CacheSize: 10 << 30})
//	recs, err := d.Usage(ctx, disk.UsageRequest{})
//	err = d.Prune(ctx, disk.PruneRequest{KeepDuration: 48 * time.Hour}, func(r disk.Record) error { ... })
//
// Errors carry core/errdefs classes. The package imports gc, cache/remote,
// config (the filter grammar) and core.
package disk
