package graph

import (
	"fmt"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/sandbox"
)

// SourceOp brings content into the build from outside: an image, the client's
// build context, a git repository or an HTTP(S) URL. Exactly one field is set.
type SourceOp struct {
	Image *ImageSource `json:"image,omitempty"`
	Local *LocalSource `json:"local,omitempty"`
	Git   *GitSource   `json:"git,omitempty"`
	HTTP  *HTTPSource  `json:"http,omitempty"`
}

func (s *SourceOp) validate() error {
	n := 0
	for _, set := range []bool{s.Image != nil, s.Local != nil, s.Git != nil, s.HTTP != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("source op must have exactly one kind set, has %d", n)
	}
	return nil
}

// ImageSource is the root filesystem of an image. Ref is fully qualified and,
// once the frontend has resolved it, pinned by digest
// ("docker.io/library/busybox:latest@sha256:..."), so that the op digest
// changes when the tag moves.
type ImageSource struct {
	Ref string `json:"ref"`
}

// LocalSource is a directory the client sends over the build stream: the
// build context ("context") or a named context. The files it selects are
// synced before the op runs. Its cache key does not depend on the content;
// steps that read from it add the content digest of what they read.
type LocalSource struct {
	Name            string   `json:"name"`
	IncludePatterns []string `json:"include,omitempty"`
	ExcludePatterns []string `json:"exclude,omitempty"` // .dockerignore patterns
	FollowPaths     []string `json:"follow,omitempty"`
	// SharedKeyHint groups syncs of the same directory across builds so
	// that the daemon can send only what changed (typically the absolute
	// path of the context on the client).
	SharedKeyHint string `json:"sharedKeyHint,omitempty"`
}

// GitSource is a git repository at a ref, fetched with the git binary.
type GitSource struct {
	Remote     string `json:"remote"`
	Ref        string `json:"ref,omitempty"`
	Subdir     string `json:"subdir,omitempty"`
	KeepGitDir bool   `json:"keepGitDir,omitempty"`
}

// HTTPSource is one file downloaded over HTTP(S).
type HTTPSource struct {
	URL      string        `json:"url"`
	Checksum digest.Digest `json:"checksum,omitempty"`
	Filename string        `json:"filename,omitempty"` // name in the result; default from the URL
	Mode     uint32        `json:"mode,omitempty"`     // default 0600, as Docker
	UID      int           `json:"uid,omitempty"`
	GID      int           `json:"gid,omitempty"`
}

// ExecOp runs a command in a container. Its output is the container's root
// filesystem after the command: the Root input (or an empty filesystem)
// plus what the command wrote there. Writes to mounts are not part of the
// output.
type ExecOp struct {
	Args []string `json:"args"`
	Env  []string `json:"env,omitempty"` // KEY=value, in the order the frontend set them
	Cwd  string   `json:"cwd,omitempty"`
	User string   `json:"user,omitempty"` // name, uid, name:group or uid:gid; resolved in the rootfs
	// Root is the index of the input that is the root filesystem, or
	// NoInput for an empty one.
	Root     int                  `json:"root"`
	Mounts   []Mount              `json:"mounts,omitempty"`
	Network  sandbox.NetMode      `json:"network,omitempty"`
	Security sandbox.SecurityMode `json:"security,omitempty"`
	// ExtraHosts are added to the step's /etc/hosts (--add-host).
	ExtraHosts []sandbox.HostIP `json:"extraHosts,omitempty"`
	// ProxyEnv holds HTTP_PROXY and friends. They reach the process but
	// are not part of the op digest, so changing a proxy re-runs nothing.
	ProxyEnv []string `json:"proxyEnv,omitempty"`

	// The fields below are set by LLB definitions (frontend/llb); the
	// Dockerfile frontend leaves them empty.

	// Output, if set, is the Target of a writable bind mount whose
	// filesystem after the command is the op's result instead of the
	// root's (an LLB exec with several outputs becomes one vertex per
	// output used).
	Output string `json:"output,omitempty"`
	// ReadonlyRoot mounts the root filesystem read-only.
	ReadonlyRoot bool `json:"readonlyRoot,omitempty"`
	// Hostname is the container's hostname (the executor's default when
	// empty).
	Hostname string `json:"hostname,omitempty"`
	// ValidExitCodes, if set, are the exit codes that count as success
	// (default: only 0).
	ValidExitCodes []int `json:"validExitCodes,omitempty"`
}

// MountType is the kind of an extra mount of an Exec op.
type MountType string

// The mount types of RUN --mount.
const (
	MountBind   MountType = "bind"
	MountCache  MountType = "cache"
	MountTmpfs  MountType = "tmpfs"
	MountSecret MountType = "secret"
	MountSSH    MountType = "ssh"
)

// CacheSharing says how concurrent builds share one cache mount.
type CacheSharing string

// The sharing modes of a cache mount. The empty value is SharingShared.
const (
	SharingShared  CacheSharing = ""
	SharingPrivate CacheSharing = "private"
	SharingLocked  CacheSharing = "locked"
)

// Mount is an extra mount of an Exec op.
type Mount struct {
	Type   MountType `json:"type"`
	Target string    `json:"target,omitempty"` // absolute path in the container; empty for a secret given only as env
	// Input is the index of the vertex input mounted (bind) or used to seed
	// the mount (cache), or NoInput.
	Input    int    `json:"input"`
	Selector string `json:"selector,omitempty"` // path inside the input; "" is its root
	Readonly bool   `json:"readonly,omitempty"`

	// Cache mounts.
	CacheID string       `json:"cacheId,omitempty"`
	Sharing CacheSharing `json:"sharing,omitempty"`

	// Ownership and mode of the mount point or file (cache, secret, ssh).
	UID  *int    `json:"uid,omitempty"`
	GID  *int    `json:"gid,omitempty"`
	Mode *uint32 `json:"mode,omitempty"`

	// Tmpfs mounts: size in bytes, 0 for the kernel default.
	TmpfsSize int64 `json:"tmpfsSize,omitempty"`

	// Secret mounts: the secret's id as the client knows it; Env, if set,
	// names an environment variable that receives the value.
	SecretID string `json:"secretId,omitempty"`
	Env      string `json:"env,omitempty"`
	// SSH mounts: the id of the agent socket the client forwards.
	SSHID string `json:"sshId,omitempty"`
	// Required makes a missing secret or ssh agent an error.
	Required bool `json:"required,omitempty"`
}

// FileOp applies file actions, in order, on top of the Base input.
type FileOp struct {
	// Base is the index of the input the actions modify, or NoInput for an
	// empty filesystem.
	Base    int          `json:"base"`
	Actions []FileAction `json:"actions"`
}

// FileAction is one file operation. Exactly one field is set.
type FileAction struct {
	Copy    *CopyAction    `json:"copy,omitempty"`
	Mkdir   *MkdirAction   `json:"mkdir,omitempty"`
	Mkfile  *MkfileAction  `json:"mkfile,omitempty"`
	Rm      *RmAction      `json:"rm,omitempty"`
	Symlink *SymlinkAction `json:"symlink,omitempty"`
	// PathCopy is a copy with LLB's explicit rules (see PathCopyAction).
	PathCopy *PathCopyAction `json:"pathCopy,omitempty"`
}

// Chown is an owner for created files: user and group are names or numeric
// ids; names are resolved in the destination filesystem's /etc/passwd and
// /etc/group. An empty Group means the user's primary group.
type Chown struct {
	User  string `json:"user"`
	Group string `json:"group,omitempty"`
}

// CopyAction copies paths from one input into the base, with Docker's COPY
// and ADD rules.
type CopyAction struct {
	Input int      `json:"input"` // index of the source input
	Src   []string `json:"src"`   // paths relative to the source root; may hold wildcards
	Dest  string   `json:"dest"`  // absolute; a trailing "/" means a directory
	Chown *Chown   `json:"chown,omitempty"`
	// Chmod is an octal ("0755") or symbolic ("u+x,go-w") mode.
	Chmod          string   `json:"chmod,omitempty"`
	FollowSymlinks bool     `json:"followSymlinks,omitempty"` // follow a top-level source symlink (inside the source root only)
	Unpack         bool     `json:"unpack,omitempty"`         // ADD: extract local tar archives
	Parents        bool     `json:"parents,omitempty"`        // keep the source's directory structure
	Exclude        []string `json:"exclude,omitempty"`        // patterns to leave out
	// Link makes the copy independent of the base (COPY --link): the
	// frontend expresses it as a copy onto an empty base merged on top.
	Link bool `json:"link,omitempty"`
	// Timestamp, if set, is the mtime (Unix seconds) of every copied file.
	Timestamp *int64 `json:"timestamp,omitempty"`
}

// MkdirAction creates a directory.
type MkdirAction struct {
	Path        string `json:"path"`
	Mode        uint32 `json:"mode"`
	MakeParents bool   `json:"makeParents,omitempty"`
	Chown       *Chown `json:"chown,omitempty"`
	Timestamp   *int64 `json:"timestamp,omitempty"`
}

// MkfileAction creates a file with the given content (COPY <<EOF).
type MkfileAction struct {
	Path      string `json:"path"`
	Mode      uint32 `json:"mode"`
	Data      []byte `json:"data"`
	Chown     *Chown `json:"chown,omitempty"`
	Timestamp *int64 `json:"timestamp,omitempty"`
}

// RmAction removes a path.
type RmAction struct {
	Path          string `json:"path"`
	AllowNotFound bool   `json:"allowNotFound,omitempty"`
	AllowWildcard bool   `json:"allowWildcard,omitempty"`
}

// SymlinkAction creates a symbolic link Newpath pointing at Oldpath.
type SymlinkAction struct {
	Oldpath string `json:"oldpath"`
	Newpath string `json:"newpath"`
	// Chown and Timestamp, if set, are the link's owner and mtime (Unix
	// seconds); by default root and the current time.
	Chown     *Chown `json:"chown,omitempty"`
	Timestamp *int64 `json:"timestamp,omitempty"`
}

// MergeOp stacks its inputs' filesystems in order, later ones on top, the
// way layers stack (COPY --link).
type MergeOp struct{}
