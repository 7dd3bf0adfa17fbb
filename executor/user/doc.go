// Package user resolves a Dockerfile user ("USER app", "app:staff", "1000",
// "1000:50", COPY --chown=...) to numeric ids from a root filesystem's
// /etc/passwd and /etc/group.
//
// The files are opened inside the root filesystem: symlinks in their paths
// resolve as they would in a container with that root, never to the host's
// files, and anything but a regular file is rejected. Parsing and the
// matching rules are those of runc and Docker (github.com/moby/sys/user):
// a name must exist, numeric ids need no entry, an explicit group replaces
// the primary group, and supplementary groups are added only when no group
// was given.
//
// This package imports only core/errdefs from Kiln.
package user
