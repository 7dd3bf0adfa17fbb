package runc

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/executor/user"
)

func testSpec(t *testing.T, c specConfig) *specs.Spec {
	t.Helper()
	if c.id == "" {
		c.id = "abc"
	}
	if c.rootfs == "" {
		c.rootfs = "/bundle/rootfs"
	}
	if c.cwd == "" {
		c.cwd = "/"
	}
	if len(c.proc.Args) == 0 {
		c.proc.Args = []string{"/bin/sh", "-c", "true"}
	}
	s, err := generateSpec(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func namespaceTypes(s *specs.Spec) []specs.LinuxNamespaceType {
	var out []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		out = append(out, ns.Type)
	}
	slices.Sort(out)
	return out
}

func mountOptions(s *specs.Spec, dest string) []string {
	for _, m := range s.Mounts {
		if m.Destination == dest {
			return m.Options
		}
	}
	return nil
}

func TestSpecSandbox(t *testing.T) {
	t.Parallel()
	s := testSpec(t, specConfig{
		id:           "c1",
		cwd:          "/src",
		cgroupParent: "kiln",
		user:         user.User{UID: 1000, GID: 1000, AdditionalGIDs: []uint32{50}, Home: "/home/app"},
		proc:         executor.Process{Args: []string{"make"}, Env: []string{"B=2", "A=1"}, SecretEnv: []string{"TOKEN=x"}, Hostname: "h"},
	})
	if s.Version != "1.0.2" {
		t.Errorf("ociVersion %q, want 1.0.2 (crun < 1.9 rejects newer ones)", s.Version)
	}
	if diff := cmp.Diff([]string{"B=2", "A=1", defaultPathEnv, "HOME=/home/app", "TOKEN=x"}, s.Process.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{50}}, s.Process.User); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	if s.Process.Cwd != "/src" || s.Hostname != "h" || s.Root.Path != "/bundle/rootfs" || s.Root.Readonly {
		t.Errorf("cwd %q, hostname %q, root %+v", s.Process.Cwd, s.Hostname, s.Root)
	}
	if !s.Process.NoNewPrivileges {
		t.Error("no-new-privileges is off")
	}
	wantCaps := []string{"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_MKNOD",
		"CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"}
	for name, caps := range map[string][]string{"bounding": s.Process.Capabilities.Bounding, "effective": s.Process.Capabilities.Effective} {
		got := slices.Sorted(slices.Values(caps))
		if diff := cmp.Diff(wantCaps, got); diff != "" {
			t.Errorf("%s capabilities (-want +got):\n%s", name, diff)
		}
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Errorf("seccomp: want Docker's default profile, got %+v", s.Linux.Seccomp)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %v, readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	want := []specs.LinuxNamespaceType{specs.IPCNamespace, specs.MountNamespace, specs.PIDNamespace, specs.UTSNamespace}
	if diff := cmp.Diff(want, namespaceTypes(s)); diff != "" {
		t.Errorf("namespaces with the default network (-want +got):\n%s", diff)
	}
	if s.Linux.CgroupsPath != "/kiln/c1" {
		t.Errorf("cgroupsPath %q, want /kiln/c1", s.Linux.CgroupsPath)
	}
	if !slices.Contains(mountOptions(s, "/sys"), "ro") || !slices.Contains(mountOptions(s, "/sys/fs/cgroup"), "ro") {
		t.Errorf("/sys %v and /sys/fs/cgroup %v must be read-only", mountOptions(s, "/sys"), mountOptions(s, "/sys/fs/cgroup"))
	}
	if mountOptions(s, "/run") != nil {
		t.Error("/run is a tmpfs: RUN steps must be able to write to /run in the image")
	}
	if len(s.Process.Rlimits) != 1 || s.Process.Rlimits[0].Type != "RLIMIT_NOFILE" || s.Process.Rlimits[0].Hard < 1024 {
		t.Errorf("rlimits %+v", s.Process.Rlimits)
	}
}

func TestSpecVariants(t *testing.T) {
	t.Parallel()
	t.Run("network none", func(t *testing.T) {
		s := testSpec(t, specConfig{proc: executor.Process{Net: sandbox.NetNone}})
		if !slices.Contains(namespaceTypes(s), specs.NetworkNamespace) {
			t.Errorf("namespaces %v: want a new network namespace", namespaceTypes(s))
		}
	})
	t.Run("network host", func(t *testing.T) {
		s := testSpec(t, specConfig{proc: executor.Process{Net: sandbox.NetHost}})
		if slices.Contains(namespaceTypes(s), specs.NetworkNamespace) {
			t.Errorf("namespaces %v: want the host's network", namespaceTypes(s))
		}
	})
	t.Run("insecure", func(t *testing.T) {
		s := testSpec(t, specConfig{proc: executor.Process{Security: sandbox.SecurityInsecure}})
		if s.Linux.Seccomp != nil || s.Process.NoNewPrivileges || len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
			t.Errorf("seccomp %v, nnp %v, masked %v, readonly %v", s.Linux.Seccomp != nil, s.Process.NoNewPrivileges, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
		}
		if slices.Contains(mountOptions(s, "/sys"), "ro") {
			t.Errorf("/sys %v: want writable", mountOptions(s, "/sys"))
		}
		if len(s.Process.Capabilities.Bounding) <= 14 {
			t.Errorf("capabilities %v: want all", s.Process.Capabilities.Bounding)
		}
		if len(s.Linux.Resources.Devices) != 1 || !s.Linux.Resources.Devices[0].Allow {
			t.Errorf("device rules %+v: want all allowed", s.Linux.Resources.Devices)
		}
	})
	t.Run("no cgroup parent and read-only root", func(t *testing.T) {
		s := testSpec(t, specConfig{readonlyRoot: true})
		if s.Linux.CgroupsPath != "" || !s.Root.Readonly {
			t.Errorf("cgroupsPath %q, readonly root %v", s.Linux.CgroupsPath, s.Root.Readonly)
		}
	})
	t.Run("env keeps PATH and HOME", func(t *testing.T) {
		s := testSpec(t, specConfig{proc: executor.Process{Env: []string{"HOME=/h", "PATH=/p"}}})
		if diff := cmp.Diff([]string{"HOME=/h", "PATH=/p"}, s.Process.Env); diff != "" {
			t.Errorf("env (-want +got):\n%s", diff)
		}
	})
	t.Run("runtime mounts come last", func(t *testing.T) {
		m := specs.Mount{Destination: "/dev/x", Type: "bind", Source: "/stage/0", Options: []string{"rbind", "ro"}}
		s := testSpec(t, specConfig{runtimeMounts: []specs.Mount{m}})
		if diff := cmp.Diff(m, s.Mounts[len(s.Mounts)-1]); diff != "" {
			t.Errorf("last mount (-want +got):\n%s", diff)
		}
	})
}

func TestHostsFile(t *testing.T) {
	t.Parallel()
	got := string(hostsFile("box", []sandbox.HostIP{
		{Host: "db", IP: netip.MustParseAddr("10.0.0.2")},
		{Host: "v6", IP: netip.MustParseAddr("fd00::1")},
	}))
	want := "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tdb\nfd00::1\tv6\n"
	if got != want {
		t.Errorf("hostsFile = %q, want %q", got, want)
	}
}

func TestResolvConfFile(t *testing.T) {
	t.Parallel()
	host := "# generated\nnameserver 127.0.0.53\nnameserver 127.1.2.3\nnameserver ::1\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nsearch corp.example\noptions edns0 trust-ad\n"
	tests := []struct {
		name    string
		hostNet bool
		want    string
	}{
		{"host network keeps everything", true, host},
		{"own network drops loopback servers", false, "# generated\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nsearch corp.example\noptions edns0 trust-ad\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, string(resolvConfFile([]byte(host), tc.hostNet))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if got := resolvConfFile(nil, false); len(got) != 0 {
		t.Errorf("no host file: %q, want empty", got)
	}
}

func TestWithEtcMounts(t *testing.T) {
	t.Parallel()
	files := etcFiles{"/etc/hosts": "/b/hosts", "/etc/resolv.conf": "/b/resolv.conf", "/etc/hostname": "/b/hostname"}
	own := executor.BindMount("/etc/resolv.conf/", "/my/resolv.conf", true)
	got := withEtcMounts([]executor.Mount{own}, files)
	var dests []string
	for _, m := range got {
		dests = append(dests, m.Dest)
	}
	if diff := cmp.Diff([]string{"/etc/resolv.conf/", "/etc/hosts", "/etc/hostname"}, dests); diff != "" {
		t.Errorf("a caller's mount must replace the generated file (-want +got):\n%s", diff)
	}
}
