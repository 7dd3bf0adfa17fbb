// Package file runs the file steps of a build: FileOp (COPY, ADD of local
// archives, the mkdir/mkfile/rm/symlink actions the frontend emits) and
// MergeOp (COPY --link layers stacked on their base).
//
// # COPY rules
//
// The rules are BuildKit's (e2e/testdata/compat compares them with
// BuildKit's results):
//
//   - A source directory copies its contents, not itself; wildcards (per
//     path element, filepath.Match syntax) expand to every match, and a
//     wildcard that matches nothing is no error, even alone. A missing
//     plain path is an error.
//   - A destination ending in "/" (or an existing directory) receives the
//     sources inside it; several sources need a destination ending in "/".
//     A destination that is a symbolic link is followed, also when it
//     dangles. The directories a copy creates (the destination and its
//     missing parents) are 0755, or the octal --chmod, owned by the
//     --chown user or root; an existing destination directory keeps its
//     metadata.
//   - Copied entries keep their mode and modification time. From a build
//     context the owner is 0:0; from a filesystem (a stage, an image) it is
//     kept. --chown (names are looked up in the destination's /etc/passwd
//     and /etc/group) sets it; --chmod takes an octal or a chmod(1)
//     symbolic mode and applies to the files and directories copied.
//   - Hard links inside one source stay hard links; two sources are copied
//     separately.
//   - --parents keeps the source path (from a "/./" marker if there is one)
//     and "**" matches any number of directories (without --parents it is
//     "*"); --exclude leaves out what the dockerignore-style patterns match
//     (relative to each matched source).
//   - Symbolic links inside a source are copied as links. A top-level source
//     that is a link is followed when the action says so.
//   - ADD of a local tar archive (plain, gzip, bzip2, xz or zstd, detected by
//     content) extracts it; anything else is copied as a file.
//
// # Containment
//
// No path leaves its root. A source path that climbs out with "..", or that
// goes through a symbolic link leaving a build context (an absolute link, or
// one with too many ".."), is an error naming the path; in a filesystem
// source (an image or a stage) links resolve as they would in a container
// whose root is that filesystem. Destination paths resolve their links inside
// the destination root (github.com/cyphar/filepath-securejoin), and the last
// element of every path the op writes is opened without following links.
//
// # The link fast path
//
// Copying a regular file from a build context (ops.Dir, whose files are only
// ever replaced by rename) into an overlay snapshot hard-links the context
// file into the snapshot's upper directory instead of copying its bytes, when
// the file keeps its owner, mode and time (a second source that is the
// same inode is copied, so that two sources stay two files). The links are made while the
// overlay is not mounted, after the rest of the action; parent directories
// the upper directory lacks are created with the metadata the lower layers
// have for them. Anything unusual (native snapshotter, --chown, --chmod,
// --timestamp, a directory in the way, a link across filesystems) copies
// instead.
//
// The op's CacheMap lists, per input, the COPY sources it reads as clean
// paths relative to the input's root (wildcards kept; none when a COPY
// reads the whole input), for the solver's content checksum.
//
// This package imports graph, ops, snapshot (to find the layer files of a
// view), executor/user and core only.
package file
