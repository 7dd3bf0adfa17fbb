// Package llb turns BuildKit's LLB (a solver/pb Definition: what
// `buildctl build`, BuildKit's Go client/llb package and gateway frontends
// such as BuildKit's own Dockerfile frontend produce) into Kiln's build
// graph, so that Kiln's solver runs it with its own cache keys, miss
// explanations, parallelism and deduplication.
//
// Convert maps every LLB op onto graph ops:
//
//	source   docker-image:// → Source.Image, local:// → Source.Local,
//	         git:// (and git@) → Source.Git, http(s):// → Source.HTTP
//	exec     → Exec, with bind (selector, readonly), cache (id, sharing),
//	         tmpfs (size), secret and ssh mounts, secrets as env, network
//	         and security modes, extra hosts, hostname, proxy env; an exec
//	         with several outputs becomes one vertex per output used
//	file     → File: mkdir, mkfile, rm, symlink, and copy as PathCopy
//	         (LLB's rules: follow symlinks, directory contents, wildcards,
//	         create dest path, chown/chmod, timestamps, include/exclude,
//	         replace existing); actions chained inside one LLB file op stay
//	         in one graph op where they form a chain
//	merge    → Merge; diff → Diff
//	build    → the inner definition, read from the builder input through
//	         Options.ReadFile and converted in place
//
// What Kiln cannot run faithfully is an error in the invalid-argument class
// that names the op (its name, and its LLB digest) and the field: an
// image layer limit, ulimits, cgroup parents, CDI devices, a git signature
// check, an oci-layout source and so on. Nothing is silently dropped except
// hints that do not change results (progress groups, cache export hints,
// local source session ids and differs).
//
// This package imports graph and core only (and BuildKit's solver/pb and
// apicaps types).
package llb
