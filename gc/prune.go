package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	ctrcontent "github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/core/errdefs"
)

// Policy selects what Prune removes (kiln prune's flags).
//
// Cache mounts (RUN --mount=type=cache directories) are pruned like
// records, with or without All: BuildKit's prune spares only its internal
// and frontend records without --all, and a default `buildx prune` removes
// exec.cachemount records, so a buildx user expects a plain `kiln prune`
// to empty the cache mounts no step uses. One a step holds is never
// touched.
type Policy struct {
	// All removes the records of pulled base image layers too.
	All bool
	// KeepDuration keeps what was used within this long (0: no limit).
	KeepDuration time.Duration
	// KeepBytes, if positive, removes least recently used records and
	// cache mounts, oldest first whatever their kind, only until the
	// total size of records and cache mounts is at most KeepBytes.
	//
	// The automatic gc to cache-size is this policy, so it removes cache
	// mounts too, in the same last-use order as records rather than before
	// or after them: a Go build cache every build mounts stays while stale
	// step results go, an apt cache no build used for a week goes before a
	// step result used today, and a cache mount that alone exceeds
	// cache-size goes once no step holds it (else it grows without bound).
	KeepBytes int64
	// KeepContexts leaves the kept build contexts alone (the automatic gc:
	// they make the next build's context transfer incremental).
	KeepContexts bool

	// Types, when set, limits the policy to these kinds (TypeRecord,
	// TypeCacheMount, TypeContext; a buildkitd.toml gcpolicy's
	// "type==…" filters). Records whose result is gone are removed
	// whatever the kinds.
	Types []string
	// ReservedBytes: a size-bound prune (KeepBytes, MinFreeBytes) never
	// goes below this total (buildkitd.toml's reservedSpace).
	ReservedBytes int64
	// MinFreeBytes, with FreeBytes, prunes until the file system has this
	// much free space (minFreeSpace).
	MinFreeBytes int64
	FreeBytes    func() (int64, error)
}

// allows reports whether p may remove items of kind typ.
func (p Policy) allows(typ string) bool {
	return len(p.Types) == 0 || slices.Contains(p.Types, typ)
}

// sizeTarget returns the total size of records and cache mounts p prunes
// down to, and false when p is not bound by size (it removes every
// candidate).
func (p Policy) sizeTarget(total int64) (int64, bool) {
	target, bounded := int64(0), false
	if p.KeepBytes > 0 {
		target, bounded = p.KeepBytes, true
	}
	if p.MinFreeBytes > 0 && p.FreeBytes != nil {
		if free, err := p.FreeBytes(); err == nil {
			t := total // enough free space: nothing to remove for it
			if free < p.MinFreeBytes {
				t = max(total-(p.MinFreeBytes-free), 0)
			}
			if !bounded || t < target {
				target, bounded = t, true
			}
		}
	}
	if bounded && target < p.ReservedBytes {
		target = p.ReservedBytes
	}
	return target, bounded
}

// Prune removes what p selects (see the package documentation) and calls
// removed for each removed item, with the bytes its removal freed. An
// error from removed stops the prune.
func (c *Collector) Prune(ctx context.Context, p Policy, removed func(Item) error) error {
	if removed == nil {
		removed = func(Item) error { return nil }
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := c.scan(ctx)
	if err != nil {
		return err
	}
	cutoff := st.now
	if p.KeepDuration > 0 {
		cutoff = st.now.Add(-p.KeepDuration)
	}

	doomed, mounts, blobBudget := st.selectVictims(p, cutoff)
	counted := map[string]bool{}
	var items []Item
	for _, r := range doomed {
		if err := c.c.Cache.Delete(ctx, r.Key); err != nil {
			return fmt.Errorf("delete cache record %s: %w", r.Key, err)
		}
		items = append(items, st.recordItem(r, counted))
	}

	gone, err := c.removeSnapshots(ctx, st, doomed, cutoff)
	if err != nil {
		return err
	}
	// A record frees its snapshot's size only if the snapshot went.
	for i := range items {
		if r := doomed[i]; !gone[r.Result] {
			items[i].Size = 0
		}
		items[i].InUse, items[i].Shared = false, false
		if err := removed(items[i]); err != nil {
			return err
		}
	}
	orphans := make([]string, 0, len(gone))
	for name := range gone {
		if !st.snaps[name].record {
			orphans = append(orphans, name)
		}
	}
	sort.Strings(orphans)
	for _, name := range orphans {
		it := st.snapshotItem(name)
		it.Shared = false
		if err := removed(it); err != nil {
			return err
		}
	}

	if err := c.removeCacheMounts(ctx, mounts, removed); err != nil {
		return err
	}
	if err := c.removeBlobs(ctx, st, gone, cutoff, blobBudget, removed); err != nil {
		return err
	}
	if c.c.Contexts != nil && !p.KeepContexts && p.allows(TypeContext) {
		err := c.c.Contexts.Prune(ctx, cutoff, func(k Context) error { return removed(contextItem(k)) })
		if err != nil {
			return err
		}
	}
	if cl, ok := c.c.Snapshotter.(interface{ Cleanup(context.Context) error }); ok {
		if err := cl.Cleanup(ctx); err != nil {
			c.c.Logger.Warn("clean up removed snapshots", "error", err)
		}
	}
	return nil
}

// selectVictims returns the records and cache mounts p removes: stale
// records (their result is gone) always; of the other records and the
// cache mounts, those not in use, not used since cutoff, not base image
// layers unless p.All, and, with p.KeepBytes, the least recently used ones
// until the rest fit. blobBudget is what unreferenced blobs may then take
// within a size-bound policy's target, -1 for a policy without one.
func (st *state) selectVictims(p Policy, cutoff time.Time) (doomed []cache.Record, mounts []CacheMount, blobBudget int64) {
	// A candidate is a record or a cache mount.
	type candidate struct {
		lastUsed time.Time
		record   *cache.Record
		mount    *CacheMount
	}
	var candidates []candidate
	sizes := map[string]int64{}
	var total int64
	for i, r := range st.records {
		s := st.snaps[r.Result]
		if s == nil {
			doomed = append(doomed, r)
			continue
		}
		if _, ok := sizes[r.Result]; !ok {
			sizes[r.Result] = s.usage
			total += s.usage
		}
		switch {
		case s.inUse, !p.allows(TypeRecord):
		case !p.All && (isLayer(r.Result) || s.image):
		case r.LastUsed.After(cutoff):
		default:
			candidates = append(candidates, candidate{lastUsed: r.LastUsed, record: &st.records[i]})
		}
	}
	for i, m := range st.mounts {
		total += m.Size
		if !m.InUse && !m.LastUsed.After(cutoff) && p.allows(TypeCacheMount) {
			candidates = append(candidates, candidate{lastUsed: m.LastUsed, mount: &st.mounts[i]})
		}
	}
	target, bounded := p.sizeTarget(total)
	if bounded {
		sort.SliceStable(candidates, func(i, j int) bool { return candidates[i].lastUsed.Before(candidates[j].lastUsed) })
	}
	users := map[string]int{}
	for _, r := range st.records {
		users[r.Result]++
	}
	for _, c := range candidates {
		if bounded && total <= target {
			break
		}
		if c.mount != nil {
			mounts = append(mounts, *c.mount)
			total -= c.mount.Size
			continue
		}
		doomed = append(doomed, *c.record)
		if users[c.record.Result]--; users[c.record.Result] == 0 {
			total -= sizes[c.record.Result]
		}
	}
	blobBudget = -1
	if bounded {
		blobBudget = max(target-total, 0)
	}
	return doomed, mounts, blobBudget
}

// removeCacheMounts removes the cache mounts selected and reports each.
// One a step took since the scan stays.
func (c *Collector) removeCacheMounts(ctx context.Context, mounts []CacheMount, removed func(Item) error) error {
	for _, m := range mounts {
		err := c.c.CacheMounts.Remove(ctx, m.Name)
		switch {
		case err == nil:
			it := cacheMountItem(m)
			it.InUse = false
			if err := removed(it); err != nil {
				return err
			}
		case errors.Is(err, errdefs.ErrFailedPrecondition), errdefs.IsNotFound(err):
			// Taken or removed since the scan.
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			c.c.Logger.Warn("remove cache mount", "cache mount", m.Name, "error", err)
		}
	}
	return nil
}

// removeSnapshots removes every committed snapshot nothing needs any more,
// children first, and returns the removed ones. Snapshots of doomed
// records go whatever their age; others only when older than cutoff and,
// while something runs, than the grace period.
func (c *Collector) removeSnapshots(ctx context.Context, st *state, doomed []cache.Record, cutoff time.Time) (map[string]bool, error) {
	wasDoomed := map[string]bool{}
	for _, r := range doomed {
		wasDoomed[r.Result] = true
	}
	remaining := map[string]bool{}
	gone := map[digest.Digest]bool{}
	for _, r := range doomed {
		gone[r.Key] = true
	}
	for _, r := range st.records {
		if !gone[r.Key] {
			remaining[r.Result] = true
		}
	}
	graceCut := st.now.Add(-c.c.Grace)
	keep := map[string]bool{}
	for name, s := range st.snaps {
		young := s.info.Updated.After(cutoff) || (st.busy && s.info.Updated.After(graceCut))
		if s.inUse || s.image || remaining[name] || (!wasDoomed[name] && young) {
			keep[name] = true
		}
	}
	// A kept snapshot keeps its parents.
	kept := make([]string, 0, len(keep))
	for name := range keep {
		kept = append(kept, name)
	}
	for _, name := range kept {
		for p, n := st.snaps[name].info.Parent, 0; p != "" && st.snaps[p] != nil && n <= len(st.snaps); p, n = st.snaps[p].info.Parent, n+1 {
			keep[p] = true
		}
	}
	var victims []string
	for name := range st.snaps {
		if !keep[name] {
			victims = append(victims, name)
		}
	}
	depth := func(name string) int {
		d := 0
		for p := st.snaps[name].info.Parent; p != "" && st.snaps[p] != nil && d <= len(st.snaps); p = st.snaps[p].info.Parent {
			d++
		}
		return d
	}
	sort.Slice(victims, func(i, j int) bool {
		di, dj := depth(victims[i]), depth(victims[j])
		if di != dj {
			return di > dj
		}
		return victims[i] < victims[j]
	})
	removed := map[string]bool{}
	for _, name := range victims {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if c.c.InUse(name) {
			continue // taken since the scan
		}
		err := c.c.Snapshotter.Remove(ctx, name)
		switch {
		case err == nil:
			removed[name] = true
		case errdefs.IsNotFound(err):
		default:
			// Typically a child appeared since the scan; the next prune
			// gets it.
			c.c.Logger.Warn("remove snapshot", "snapshot", name, "error", err)
		}
	}
	return removed, nil
}

// removeBlobs deletes the blobs no stored image and no remaining
// snapshot's layer labels reference, unless used since cutoff or, while
// something runs, within the grace period. With a budget (>= 0), only the
// least recently used of them go, until the rest fit in budget bytes: the
// gc after every build, under cache-size, leaves the manifests and
// configs of the base images alone (removing them made every rebuild
// fetch and write them again, ~20 ms).
func (c *Collector) removeBlobs(ctx context.Context, st *state, gone map[string]bool, cutoff time.Time, budget int64, removed func(Item) error) error {
	labelled := st.labelledBlobs(gone)
	graceCut := st.now.Add(-c.c.Grace)
	var victims []ctrcontent.Info
	err := c.walkBlobs(ctx, func(info ctrcontent.Info) error {
		if _, ok := st.imageBlobs[info.Digest]; ok || labelled[info.Digest] {
			return nil
		}
		last := blobLastUse(info)
		if last.After(cutoff) || (st.busy && last.After(graceCut)) {
			return nil
		}
		victims = append(victims, info)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	if budget >= 0 {
		sort.SliceStable(victims, func(i, j int) bool { return blobLastUse(victims[i]).Before(blobLastUse(victims[j])) })
		var size int64
		for _, v := range victims {
			size += v.Size
		}
		n := 0
		for n < len(victims) && size > budget {
			size -= victims[n].Size
			n++
		}
		victims = victims[:n]
	}
	for _, info := range victims {
		err := c.c.Content.Delete(ctx, info.Digest)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete blob %s: %w", info.Digest, err)
		}
		it := st.blobItem(info, nil)
		if err := removed(it); err != nil {
			return err
		}
	}
	return nil
}

// blobLastUse is when a blob was last written or used.
func blobLastUse(info ctrcontent.Info) time.Time {
	if info.CreatedAt.After(info.UpdatedAt) {
		return info.CreatedAt
	}
	return info.UpdatedAt
}
