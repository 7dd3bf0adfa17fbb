package graph

import "fmt"

// DiffOp is the difference between its two inputs, lower (input 0) and
// upper (input 1): the files and directories that upper adds or changes
// relative to lower, as a filesystem of its own (LLB's diff op). Paths
// that upper removes are not represented; an op that would need them fails
// rather than silently keep them.
type DiffOp struct{}

// PathCopyAction copies one path from an input into the base with the
// explicit rules of BuildKit's LLB copy (FileActionCopy), which is what LLB
// definitions and gateway frontends produce. The Dockerfile frontend uses
// CopyAction instead, whose rules are COPY's.
//
// Src names one path of the source (or, with Wildcard, a pattern whose
// every match is copied in turn). A source directory is copied as the
// directory itself, onto Dest, unless DirContents is set, in which case
// its entries are. A source onto an existing directory (or a Dest ending in
// "/") lands inside it. Without Chown and Mode, copies keep the source's
// owner and permission bits.
type PathCopyAction struct {
	Input int    `json:"input"` // index of the source input
	Src   string `json:"src"`   // absolute path in the source
	Dest  string `json:"dest"`  // absolute path in the base
	// Chown, if set, owns everything copied; nil keeps the source owners.
	Chown *Chown `json:"chown,omitempty"`
	// Mode, if set, replaces the permission bits; ModeStr is a chmod(1)
	// symbolic mode ("u+x,go-w") and wins over Mode.
	Mode    *uint32 `json:"mode,omitempty"`
	ModeStr string  `json:"modeStr,omitempty"`
	// FollowSymlinks resolves a source that is a symbolic link (inside the
	// source root) and copies what it points at.
	FollowSymlinks bool `json:"followSymlinks,omitempty"`
	// DirContents copies a source directory's entries, not the directory.
	DirContents bool `json:"dirContents,omitempty"`
	// Unpack extracts a source that is a tar archive (ADD's rule).
	Unpack bool `json:"unpack,omitempty"`
	// CreateDestPath creates Dest's missing parent directories; without
	// it, the parent must exist.
	CreateDestPath bool `json:"createDestPath,omitempty"`
	// Wildcard lets Src hold filepath.Match patterns; AllowEmptyWildcard
	// makes a pattern that matches nothing a no-op instead of an error.
	Wildcard           bool `json:"wildcard,omitempty"`
	AllowEmptyWildcard bool `json:"allowEmptyWildcard,omitempty"`
	// Include and Exclude filter what a directory copy takes
	// (.dockerignore patterns, relative to Src); RequiredPaths must exist
	// in the source.
	Include       []string `json:"include,omitempty"`
	Exclude       []string `json:"exclude,omitempty"`
	RequiredPaths []string `json:"requiredPaths,omitempty"`
	// ReplaceExisting replaces a destination entry whose type differs from
	// the source's (a file where a directory goes) instead of failing.
	ReplaceExisting bool `json:"replaceExisting,omitempty"`
	// Timestamp, if set, is the mtime (Unix seconds) of everything copied.
	Timestamp *int64 `json:"timestamp,omitempty"`
}

// validateOutput checks that an exec op's Output names a writable bind
// mount.
func (e *ExecOp) validateOutput() error {
	if e.Output == "" {
		return nil
	}
	for _, m := range e.Mounts {
		if m.Target != e.Output {
			continue
		}
		if m.Type != MountBind || m.Readonly {
			return fmt.Errorf("exec op output %s is not a writable bind mount", e.Output)
		}
		return nil
	}
	return fmt.Errorf("exec op output %s is not one of its mounts", e.Output)
}
