package runc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/moby/sys/mountinfo"

	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
)

// With WithUserNamespace a process runs as root in a user namespace (an
// unprivileged user on the host), and what it writes keeps the ids it sees
// on disk: layers and diffs do not change.
func TestUserNamespace(t *testing.T) {
	requireRoot(t)
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("skipping: busybox-static is not installed")
	}
	maps := []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			// Without a way through the test's private directories, New
			// says which one stops the container's root.
			if err := checkKernel(5, 19); err != nil {
				t.Skipf("skipping: %v", err)
			}
			if err := checkTraversable(os.TempDir(), 100000); err != nil {
				t.Skipf("skipping: %v", err)
			}
			root := t.TempDir()
			if _, err := New(root, WithRuntime(rt), WithUserNamespace(maps, maps)); err == nil || !strings.Contains(err.Error(), "chmod o+x") {
				t.Fatalf("New under a private directory: %v", err)
			}
			for d := root; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
				if err := os.Chmod(d, 0o711); err != nil {
					t.Fatal(err)
				}
			}
			e, err := New(root, WithRuntime(rt), WithUserNamespace(maps, maps))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { assertNoLeftovers(t, e) })
			t.Cleanup(func() {
				if err := e.Close(); err != nil {
					t.Error(err)
				}
			})
			// The layers live in the daemon's storage, as snapshots do.
			snap := filepath.Join(filepath.Dir(e.dir), "snapshots", "1")
			lower, upper, work := filepath.Join(snap, "lower"), filepath.Join(snap, "upper"), filepath.Join(snap, "work")
			for _, d := range []string{lower, upper, work} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := buildBusyboxRootfs(bb, lower); err != nil {
				t.Fatal(err)
			}
			rootfs := executor.Mount{Dest: "/", Source: []mount.Mount{{
				Type: "overlay", Source: "overlay",
				Options: []string{"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work},
			}}}
			// A directory of the host bound in, owned by host root.
			shared := t.TempDir()
			bind := executor.Mount{Dest: "/shared", Source: []mount.Mount{{Type: "bind", Source: shared, Options: []string{"rbind", "rw"}}}}

			out, errOut, err := run(t, e, rootfs, []executor.Mount{bind}, executor.Process{
				Args: sh("id -u; cat /proc/self/uid_map; echo made > /made; mkdir -p /home/u; echo f > /home/u/f; chown -R 1000:1000 /home/u; echo x >> /etc/passwd; echo s > /shared/s"),
			})
			if err != nil {
				t.Fatalf("run: %v\n%s", err, errOut)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) < 2 || lines[0] != "0" || strings.Join(strings.Fields(lines[1]), " ") != "0 100000 65536" {
				t.Errorf("inside: %q, want uid 0 mapped to host 100000", out)
			}
			for path, want := range map[string][2]uint32{
				filepath.Join(upper, "made"):       {0, 0},
				filepath.Join(upper, "etc/passwd"): {0, 0}, // copied up
				filepath.Join(upper, "home/u/f"):   {1000, 1000},
				filepath.Join(shared, "s"):         {0, 0},
			} {
				fi, err := os.Lstat(path)
				if err != nil {
					t.Errorf("%s: %v", path, err)
					continue
				}
				if uid, gid := owner(fi); uid != want[0] || gid != want[1] {
					t.Errorf("%s is owned by %d:%d on disk, want %d:%d", path, uid, gid, want[0], want[1])
				}
			}

			// With a network namespace of its own, /sys is a sysfs of it.
			out, errOut, err = run(t, e, rootfs, nil, executor.Process{Net: sandbox.NetNone, Args: sh("id -u; ls /sys/class/net")})
			if err != nil || !strings.HasPrefix(out, "0\n") || !strings.Contains(out, "lo") {
				t.Errorf("network none: %q, %v\n%s", out, err, errOut)
			}

			// Cleanup after a crash leaves the idmapped view (the whole
			// storage) alone.
			if err := e.Cleanup(context.Background()); err != nil {
				t.Fatalf("Cleanup: %v", err)
			}
			if _, err := os.Stat(filepath.Join(lower, "bin/busybox")); err != nil {
				t.Fatalf("the storage after Cleanup: %v", err)
			}

			// A user's working directory is created as theirs.
			out, errOut, err = run(t, e, rootfs, nil, executor.Process{User: "1000:1000", Cwd: "/work/dir", Args: sh("id -u; touch x")})
			if err != nil || strings.TrimSpace(out) != "1000" {
				t.Fatalf("run as 1000: %q, %v\n%s", out, err, errOut)
			}
			fi, err := os.Lstat(filepath.Join(upper, "work/dir/x"))
			if err != nil {
				t.Fatal(err)
			}
			if uid, gid := owner(fi); uid != 1000 || gid != 1000 {
				t.Errorf("/work/dir/x is owned by %d:%d on disk, want 1000:1000", uid, gid)
			}
		})
	}
}

// A daemon killed with its idmapped view mounted starts again: New replaces
// the stale view, and Close leaves no mount behind.
func TestUserNamespaceAfterACrash(t *testing.T) {
	requireRoot(t)
	if err := checkKernel(5, 19); err != nil {
		t.Skipf("skipping: %v", err)
	}
	if err := checkTraversable(os.TempDir(), 100000); err != nil {
		t.Skipf("skipping: %v", err)
	}
	maps := []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	root, err := os.MkdirTemp("", "kiln-userns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatal(err)
	}
	first, err := New(root, WithUserNamespace(maps, maps))
	if err != nil {
		t.Fatal(err)
	}
	_ = first // "killed": never closed
	second, err := New(root, WithUserNamespace(maps, maps))
	if err != nil {
		t.Fatalf("New after a crash: %v", err)
	}
	if err := second.Cleanup(context.Background()); err != nil {
		t.Fatalf("Cleanup after a crash: %v", err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	first.userns.ns.Close()
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(root))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 0 {
		t.Errorf("%d mounts left under %s (first: %s)", len(mounts), root, mounts[0].Mountpoint)
	}
}

func TestCheckKernel(t *testing.T) {
	t.Parallel()
	if err := checkKernel(3, 0); err != nil {
		t.Errorf("checkKernel(3.0) = %v", err)
	}
	err := checkKernel(99, 0)
	if !errors.Is(err, ErrUserNamespaceKernel) || !strings.Contains(err.Error(), "needs Linux 99.0") {
		t.Errorf("checkKernel(99.0) = %v", err)
	}
}

func TestHostID(t *testing.T) {
	t.Parallel()
	maps := []IDMap{{ContainerID: 0, HostID: 100000, Size: 1000}, {ContainerID: 5000, HostID: 300000, Size: 10}}
	for _, tc := range []struct {
		in   uint32
		want uint32
		ok   bool
	}{{0, 100000, true}, {999, 100999, true}, {1000, 0, false}, {5009, 300009, true}, {5010, 0, false}} {
		if got, ok := hostID(maps, tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("hostID(%d) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
