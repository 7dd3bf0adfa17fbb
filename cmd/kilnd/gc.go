package main

import (
	"time"

	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/gc"
)

// gcPolicies turns [[worker.oci.gcpolicy]] into the automatic gc's
// policies, in order; none when gc is off. Percentages are of the size of
// the file system the root is on (diskSize); free space is read when a
// policy runs.
//
// A policy prunes kept build contexts only when it allows source.local
// records and has a keep-duration: they are what makes the next context
// transfer incremental, and a size-bound policy would drop them all.
func gcPolicies(cfg *config.Config, diskSize int64, free func() (int64, error)) []gc.Policy {
	if !cfg.Worker.OCI.GC {
		return nil
	}
	bytes := func(d config.DiskSpace) int64 {
		if d.Bytes > 0 {
			return int64(d.Bytes)
		}
		return diskSize * int64(d.Percent) / 100
	}
	var out []gc.Policy
	for _, cp := range cfg.Worker.OCI.GCPolicy {
		p := gc.Policy{All: cp.All, KeepDuration: time.Duration(cp.KeepDuration)}
		for _, f := range cp.Filters {
			if typ, err := config.GCFilterType(f); err == nil { // validated at load
				p.Types = append(p.Types, typ)
			}
		}
		for _, limit := range []config.DiskSpace{cp.KeepBytes, cp.MaxUsedSpace} {
			if b := bytes(limit); b > 0 && (p.KeepBytes == 0 || b < p.KeepBytes) {
				p.KeepBytes = b
			}
		}
		p.ReservedBytes = bytes(cp.ReservedSpace)
		if p.MinFreeBytes = bytes(cp.MinFreeSpace); p.MinFreeBytes > 0 {
			p.FreeBytes = free
		}
		p.KeepContexts = p.KeepDuration == 0 // type filters are gc.Policy's to apply
		out = append(out, p)
	}
	return out
}
