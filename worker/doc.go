// Package worker owns the machine side of builds: the snapshotter, the
// content store, the executor and the sources. It implements
// solver.Worker: it turns each graph vertex into an ops.Op (exec, file,
// merge and source ops from their packages), loads results named in cache
// records, and computes content checksums of synced contexts.
package worker
