// Package runc is the executor.Executor that runs build steps with an OCI
// runtime: runc (the default) or crun, called as a command.
//
// # Lifecycle of one Run
//
// Each Run gets a bundle directory <root>/executor/<id> (mode 0700) holding
// the generated config.json, the runtime's log, the generated /etc/hosts,
// /etc/resolv.conf and /etc/hostname, and the rootfs mount point:
//
//  1. the root Mount is mounted at <bundle>/rootfs on the host;
//  2. every extra mount is mounted in a private staging directory, cloned
//     with open_tree(2), made read-only with mount_setattr(2) if asked and
//     attached with move_mount(2) to its mount point, which is created (or
//     found) inside the rootfs with openat2 RESOLVE_IN_ROOT semantics
//     (github.com/cyphar/filepath-securejoin/pathrs-lite). A symlink in a
//     destination therefore resolves as it would in the container and can
//     never reach a host path; the mount is attached to exactly the inode
//     that was checked. Destinations under /dev, /proc and /sys, which the
//     runtime mounts itself, are handed to the runtime as bind mounts of
//     the staging directory instead;
//  3. the working directory is created if missing (owned by the user);
//  4. `<runtime> --root <root>/executor/runc-state run --bundle <bundle> <id>`
//     runs the process in the foreground; its stdout and stderr go straight
//     to the caller's writers;
//  5. everything is undone in reverse: extra mounts are detached, the mount
//     points Run created are removed again (when still empty, restoring the
//     parent's times) so they never become part of the snapshot, the rootfs
//     is unmounted and the bundle removed.
//
// Cancelling the context sends SIGKILL through `<runtime> kill` until the
// foreground runtime exits, then `<runtime> delete --force` removes the
// container. Cleanup, called once when the daemon starts, removes what a
// crash left behind: containers in the state directory, mounts and
// bundles.
//
// # Container setup
//
// The spec starts from containerd's default Linux spec (pkg/oci): Docker's
// default capabilities, no-new-privileges, masked and read-only /proc paths,
// /sys read-only, namespaces mount, pid, ipc and uts, a devices cgroup that
// allows only the standard devices, and cgroupsPath
// /kiln/<daemon>/<id>/ctr. On top come
// Docker's default seccomp profile (github.com/moby/profiles/seccomp), the
// process's argv, env (with Docker's default PATH and the user's HOME when
// absent), user and groups resolved in the rootfs (executor/user), and the
// network: the host's by default, a new namespace with only loopback for
// "none". SecurityInsecure (only when the Executor allows it) grants all
// capabilities, drops seccomp and the masks, makes /sys and the cgroup fs
// writable and exposes the host's devices.
//
// # User namespaces
//
// WithUserNamespace ([rootless] enabled) adds a user namespace with the
// configured maps, so root in a step is an unprivileged host user. Files
// keep on disk the ids the step sees: the executor mounts an idmapped view
// of the daemon's root once (userns/store below its directory, 0700) and
// builds each step's overlay over that view from a thread whose file
// system ids are the step root's host ids (overlayfs works with its
// mounter's credentials; host root is outside the maps). Other mounts are
// idmapped as they are attached, the daemon creates mount points and the
// working directory as the step's root, and with the host's network /sys
// is the host's, read-only. It needs Linux 5.19.
//
// crun refuses to start containers on a cgroup v1/v2 hybrid host whose v2
// hierarchy has controllers enabled. When that is the case the executor
// starts crun from a thread in a private mount namespace in which
// /sys/fs/cgroup/unified is unmounted, so that crun sees a plain v1 host,
// and starts it directly in the step's v2 cgroup (clone3
// CLONE_INTO_CGROUP), where the step's pressure is kept.
//
// crun is executed from a copy of its binary that the executor makes once,
// in a memfd sealed against writes, shrinking and growing
// (runtime.go, sealedCopy): a container cannot overwrite the runtime
// through /proc/<pid>/exe (CVE-2019-5736), and crun, which would
// otherwise make such a copy of itself and re-execute it on every call,
// sees that it already runs from one (~5 ms less per container).
//
// # Accounting
//
// Each container gets a cgroup of its own, /kiln/<daemon>/<id>, created
// by the executor (internal/cgroup), and the runtime is given its child
// .../ctr; the usage of the removed child stays in the parent, so Run can
// fill executor.Process.Usage (CPU time, peak memory, I/O bytes, wall
// time, OOM kill) once the container is gone, and then removes the
// cgroup. accounting.go describes where each figure comes from on cgroup
// v2 and v1.
//
// This package imports only core/, executor/ and internal/cgroup from
// Kiln.
package runc
