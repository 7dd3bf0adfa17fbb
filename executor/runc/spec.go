package runc

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/executor/user"
)

// defaultPathEnv is Docker's PATH for Linux containers.
const defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// nofileLimit is RLIMIT_NOFILE in the container, as in BuildKit, unless
// the daemon's own hard limit is lower (raising it needs CAP_SYS_RESOURCE,
// which a daemon in a container may lack).
const nofileLimit = 1 << 20

func containerNofile() uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Max < nofileLimit {
		return rl.Max
	}
	return nofileLimit
}

// specVersion is the ociVersion written into config.json. The spec uses
// nothing newer than 1.0.2, and crun before 1.9 rejects any version it
// does not know ("unknown version specified"), such as the 1.3.0 of the
// runtime-spec module.
const specVersion = "1.0.2"

type specConfig struct {
	id            string
	rootfs        string
	readonlyRoot  bool
	proc          executor.Process
	cwd           string
	user          user.User
	cgroupParent  string
	runtimeMounts []specs.Mount
	userns        *userns
}

// generateSpec builds the OCI runtime spec of one container (see the
// package documentation for what it contains).
func generateSpec(ctx context.Context, c specConfig) (*specs.Spec, error) {
	// containerd's default spec needs a namespace; it becomes the cgroup
	// parent, which withCgroupParent sets explicitly below anyway.
	ctx = namespaces.WithNamespace(ctx, "kiln")
	opts := []oci.SpecOpts{
		oci.WithoutRunMount,
		oci.WithRootFSPath(c.rootfs),
		oci.WithProcessArgs(c.proc.Args...),
		oci.WithProcessCwd(c.cwd),
		oci.WithHostname(c.proc.Hostname),
		oci.WithUIDGID(c.user.UID, c.user.GID),
		withAdditionalGIDs(c.user.AdditionalGIDs),
		withEnv(processEnv(c.proc, c.user)),
		oci.WithRlimit(&specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: containerNofile(), Soft: containerNofile()}),
		oci.WithMounts([]specs.Mount{{
			Destination: "/sys/fs/cgroup",
			Type:        "cgroup",
			Source:      "cgroup",
			Options:     []string{"ro", "nosuid", "noexec", "nodev"},
		}}),
		oci.WithMounts(c.runtimeMounts),
		withCgroupParent(c.cgroupParent, c.id),
	}
	if c.readonlyRoot {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if c.proc.Net != sandbox.NetNone {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
	}
	if c.proc.Security == sandbox.SecurityInsecure {
		opts = append(opts,
			oci.WithPrivileged, // all current capabilities, no masks, rw /sys and cgroupfs, no seccomp
			oci.WithAllDevicesAllowed,
			oci.WithHostDevices,
			oci.WithNewPrivileges,
		)
	} else {
		opts = append(opts, oci.WithNoNewPrivileges, withDefaultSeccomp)
	}
	if c.userns != nil {
		opts = append(opts, withUserNamespace(c.userns, c.proc.Net != sandbox.NetNone))
	}
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: c.id}, opts...)
	if err != nil {
		return nil, fmt.Errorf("generate runtime spec: %w", err)
	}
	s.Version = specVersion
	return s, nil
}

// processEnv is the process's environment: Env, Docker's default PATH and
// the user's HOME when Env has none, then SecretEnv.
func processEnv(p executor.Process, u user.User) []string {
	env := append([]string(nil), p.Env...)
	if !hasEnv(env, "PATH") {
		env = append(env, defaultPathEnv)
	}
	if !hasEnv(env, "HOME") {
		home := u.Home
		if home == "" {
			home = "/"
		}
		env = append(env, "HOME="+home)
	}
	return append(env, p.SecretEnv...)
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// withEnv sets the environment as given, keeping its order (oci.WithEnv
// merges by key instead).
func withEnv(env []string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Process.Env = env
		return nil
	}
}

func withAdditionalGIDs(gids []uint32) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Process.User.AdditionalGids = append([]uint32(nil), gids...)
		return nil
	}
}

func withCgroupParent(parent, id string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		if parent == "" {
			s.Linux.CgroupsPath = ""
		} else {
			s.Linux.CgroupsPath = path.Join("/", parent, id)
		}
		return nil
	}
}

// withDefaultSeccomp installs Docker's default seccomp profile, filtered for
// the capabilities the spec grants (so it must run after them).
func withDefaultSeccomp(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
	sc, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return fmt.Errorf("default seccomp profile: %w", err)
	}
	sc.Architectures = runnableArchitectures(sc.Architectures)
	s.Linux.Seccomp = sc
	return nil
}

// cleanAbs cleans an absolute container path.
func cleanAbs(p string) string {
	return path.Clean("/" + p)
}

// withUserNamespace runs the container in a new user namespace with u's
// maps. A user namespace cannot mount sysfs for the host's network
// namespace: with hostNet /sys is the host's, bound read-only, as rootless
// containers have it.
func withUserNamespace(u *userns, hostNet bool) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = append([]IDMap(nil), u.uids...)
		s.Linux.GIDMappings = append([]IDMap(nil), u.gids...)
		if hostNet {
			for i, m := range s.Mounts {
				if m.Destination == "/sys" && m.Type == "sysfs" {
					s.Mounts[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
				}
			}
		}
		return nil
	}
}
