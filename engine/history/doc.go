// Package history keeps the records of a daemon's builds: the running ones
// in memory, the finished ones (the newest Limit of them, and every pinned
// one) in the metadata database. It is the engine's history service: the
// engine starts and finishes records as builds run; the API edges list
// them (kiln history), read one, pin or delete one, and listen to the
// records as builds start and finish (BuildKit's ListenBuildHistory and
// UpdateBuildHistory).
//
//	h, err := history.Open(db)
//	h.Start(ctx, history.Record{Ref: "abc", Created: time.Now()})
//	...
//	h.Finish(ctx, rec) // persisted, listeners told
//	recs, err := h.List(ctx, history.Filter{Limit: 10})
//
// The package imports bbolt and core/errdefs only.
package history
