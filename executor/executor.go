package executor

import (
	"context"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
)

// Executor runs one process in a container.
//
// Run mounts root (Dest "/") as the container's root filesystem and mounts
// in on top of it, in the order of their destinations (a parent before its
// children), runs p and waits for it. Writes to root land in root's source
// (the step's snapshot); mount points that Run had to create for mounts are
// removed again, so they do not become part of the snapshot.
//
// Run returns nil when the process exits with status 0, an *ExitError when
// it exits with another status, and an error wrapping context.Cause(ctx)
// when ctx ends first. In every case the container, its mounts and its
// temporary files are gone when Run returns.
//
// Example (a RUN step with a cache mount):
//
//	err := ex.Run(ctx,
//		executor.Mount{Dest: "/", Source: snapshotMounts},
//		[]executor.Mount{executor.BindMount("/root/.cache", cacheDir, false)},
//		executor.Process{
//			Args:   []string{"/bin/sh", "-c", "make"},
//			Env:    []string{"PATH=/usr/bin:/bin"},
//			Cwd:    "/src",
//			Stdout: out, Stderr: out,
//		})
//	var exit *executor.ExitError
//	if errors.As(err, &exit) { /* exit.Code */ }
type Executor interface {
	Run(ctx context.Context, root Mount, mounts []Mount, p Process) error
}

// Mount is a filesystem to mount in the container.
type Mount struct {
	// Dest is the absolute path in the container; "/" for the root.
	// Symlinks in it resolve inside the container's root filesystem, never
	// outside it.
	Dest string
	// Source are containerd mounts applied in order at Dest (one overlay
	// or bind is the usual case). A "bind" whose source is not a directory
	// (a file, a unix socket) mounts that single file; its mount point is
	// created as an empty file.
	Source []mount.Mount
	// Readonly makes the mount read-only in the container, whatever
	// Source's options say.
	Readonly bool
}

// BindMount returns a Mount that binds the host path src (a directory or a
// single file, e.g. a secret on a tmpfs or an ssh agent socket) at dest.
func BindMount(dest, src string, readonly bool) Mount {
	opts := []string{"rbind", "rw"}
	if readonly {
		opts = []string{"rbind", "ro"}
	}
	return Mount{
		Dest:     dest,
		Source:   []mount.Mount{{Type: "bind", Source: src, Options: opts}},
		Readonly: readonly,
	}
}

// TmpfsMount returns a Mount of a new, empty tmpfs at dest. size is in bytes;
// 0 means the kernel's default (half of RAM). extra are more tmpfs options
// such as "mode=0700" or "uid=1000".
func TmpfsMount(dest string, size int64, extra ...string) Mount {
	opts := []string{"nosuid", "nodev"}
	if size > 0 {
		opts = append(opts, "size="+strconv.FormatInt(size, 10))
	}
	opts = append(opts, extra...)
	return Mount{
		Dest:   dest,
		Source: []mount.Mount{{Type: "tmpfs", Source: "tmpfs", Options: opts}},
	}
}

// Validate reports whether m is well-formed: an absolute, clean Dest and at
// least one source.
func (m Mount) Validate() error {
	if !path.IsAbs(m.Dest) {
		return errdefs.Invalidf("mount destination %q is not an absolute path", m.Dest)
	}
	if len(m.Source) == 0 {
		return errdefs.Invalidf("mount %s has no source", m.Dest)
	}
	for _, s := range m.Source {
		if s.Type == "" {
			return errdefs.Invalidf("mount %s: source %q has no type", m.Dest, s.Source)
		}
	}
	return nil
}

// Process is what runs in the container.
type Process struct {
	// Args is the argv; Args[0] is looked up in PATH if it has no slash.
	Args []string
	// Env holds KEY=value pairs. PATH gets Docker's default when absent,
	// HOME the user's home directory (or "/").
	Env []string
	// SecretEnv holds KEY=value pairs for secrets exposed as environment
	// variables (RUN --mount=type=secret,env=...). They reach the process
	// like Env but never appear in errors; they are written only to the
	// runtime's private bundle, which is removed when Run returns.
	SecretEnv []string
	// User is "", a name, a uid, name:group or uid:gid, resolved in the root
	// filesystem's /etc/passwd and /etc/group (see ResolveUser). "" is root.
	User string
	// Cwd is the absolute working directory, "/" if empty. It is created
	// when missing (owned by the user), and stays in the root filesystem.
	Cwd string
	// Net and Security select the network and the privilege level.
	Net      sandbox.NetMode
	Security sandbox.SecurityMode
	// Hostname is the container's hostname; the executor picks a default
	// when empty.
	Hostname string
	// ExtraHosts are added to the generated /etc/hosts.
	ExtraHosts []sandbox.HostIP
	// Stdin is the process's standard input; nil reads nothing.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output while it runs; nil
	// discards it.
	Stdout, Stderr io.Writer
}

// Validate reports whether p can run at all.
func (p Process) Validate() error {
	if len(p.Args) == 0 || p.Args[0] == "" {
		return errdefs.Invalidf("process has no command")
	}
	if p.Cwd != "" && !path.IsAbs(p.Cwd) {
		return errdefs.Invalidf("working directory %q is not an absolute path", p.Cwd)
	}
	switch p.Net {
	case sandbox.NetDefault, sandbox.NetNone, sandbox.NetHost:
	default:
		return errdefs.Invalidf("unknown network mode %q (want \"default\", \"none\" or \"host\")", p.Net)
	}
	switch p.Security {
	case sandbox.SecuritySandbox, sandbox.SecurityInsecure:
	default:
		return errdefs.Invalidf("unknown security mode %q (want \"sandbox\" or \"insecure\")", p.Security)
	}
	for _, kv := range append(append([]string(nil), p.Env...), p.SecretEnv...) {
		if k, _, _ := strings.Cut(kv, "="); k == "" {
			return errdefs.Invalidf("environment entry without a name: %q", redact(kv))
		}
	}
	for _, h := range p.ExtraHosts {
		if !h.Valid() {
			return errdefs.Invalidf("invalid extra host %q=%v", h.Host, h.IP)
		}
	}
	return nil
}

// redact shortens an env entry so that an error never shows a value.
func redact(kv string) string {
	if len(kv) > 1 {
		return kv[:1] + "..."
	}
	return kv
}

// ExitError is the error of a process that exited with a non-zero status.
// A process killed by a signal has Code 128+signal, as in a shell.
type ExitError struct {
	Code int
	Args []string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("process %q did not complete successfully: exit code: %d", strings.Join(e.Args, " "), e.Code)
}
