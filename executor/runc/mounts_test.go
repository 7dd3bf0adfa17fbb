package runc

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/executor"
)

func TestRunMounts(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	base := busyboxLower(t)
	// A layer over the busybox rootfs with a file and symlinks that try to
	// lead a mount out of the root filesystem.
	lower := t.TempDir()
	if err := os.Mkdir(filepath.Join(lower, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(lower, "etc/afile"), "file in the image\n")
	// The absolute one names a host directory that also exists inside the
	// rootfs, where it must resolve.
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(lower, outside), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(lower, "abs-escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/dir", filepath.Join(lower, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../..", filepath.Join(lower, "rel-escape")); err != nil {
		t.Fatal(err)
	}

	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			e := newTestExecutor(t, rt)

			t.Run("bind rw and ro directories", func(t *testing.T) {
				rw, ro := t.TempDir(), t.TempDir()
				writeFile(t, filepath.Join(rw, "in"), "rw-in\n")
				writeFile(t, filepath.Join(ro, "in"), "ro-in\n")
				root, upper := overlayRoot(t, lower, base)
				out, errOut, err := run(t, e, root, []executor.Mount{
					executor.BindMount("/mnt/rw", rw, false),
					executor.BindMount("/mnt/ro", ro, true),
				}, executor.Process{Args: sh("cat /mnt/rw/in /mnt/ro/in; echo out > /mnt/rw/out; echo x > /mnt/ro/out 2>&1 || echo ro-refused")})
				if err != nil {
					t.Fatalf("Run: %v (stderr %q)", err, errOut)
				}
				if want := "rw-in\nro-in\n"; !strings.HasPrefix(out, want) || !strings.Contains(out, "ro-refused") {
					t.Errorf("output %q: want %q then ro-refused", out, want)
				}
				if got, _ := os.ReadFile(filepath.Join(rw, "out")); string(got) != "out\n" {
					t.Errorf("write to the rw bind: host sees %q", got)
				}
				if _, err := os.Stat(filepath.Join(ro, "out")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the ro bind source was written to")
				}
				// The ro source itself stays writable on the host.
				writeFile(t, filepath.Join(ro, "host-write"), "ok")
				assertNotInUpper(t, upper, "mnt")
			})

			t.Run("tmpfs with size", func(t *testing.T) {
				root, upper := overlayRoot(t, lower, base)
				out, errOut, err := run(t, e, root, []executor.Mount{executor.TmpfsMount("/scratch", 1<<20)},
					executor.Process{Args: sh("grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4; echo data > /scratch/f && cat /scratch/f")})
				if err != nil {
					t.Fatalf("Run: %v (stderr %q)", err, errOut)
				}
				if !strings.HasPrefix(out, "tmpfs rw,nosuid,nodev") || !strings.Contains(out, "size=1024k") || !strings.HasSuffix(out, "data\n") {
					t.Errorf("output %q: want a 1024k tmpfs with nosuid,nodev that holds data", out)
				}
				assertNotInUpper(t, upper, "scratch")
			})

			t.Run("single file and socket", func(t *testing.T) {
				dir := t.TempDir()
				secret := filepath.Join(dir, "secret")
				writeFile(t, secret, "s3cret")
				sock := filepath.Join(dir, "agent.sock")
				ln, err := net.Listen("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				root, upper := overlayRoot(t, lower, base)
				out, errOut, err := run(t, e, root, []executor.Mount{
					executor.BindMount("/run/secrets/token", secret, true),
					executor.BindMount("/run/buildkit/ssh_agent.0", sock, true),
					executor.BindMount("/etc/afile", secret, true), // over an existing file
				}, executor.Process{Args: sh("cat /run/secrets/token; echo; cat /etc/afile; echo; test -S /run/buildkit/ssh_agent.0 && echo socket; echo x > /run/secrets/token 2>/dev/null || echo ro")})
				if err != nil {
					t.Fatalf("Run: %v (stderr %q)", err, errOut)
				}
				if want := "s3cret\ns3cret\nsocket\nro\n"; out != want {
					t.Errorf("output %q, want %q", out, want)
				}
				assertNotInUpper(t, upper, "run")
				if _, err := os.Lstat(filepath.Join(upper, "etc/afile")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("mounting over /etc/afile changed it in the snapshot")
				}
			})

			t.Run("nested mounts", func(t *testing.T) {
				cache := t.TempDir()
				root, _ := overlayRoot(t, lower, base)
				out, errOut, err := run(t, e, root, []executor.Mount{
					// Deliberately child first: the executor orders by depth.
					executor.TmpfsMount("/cache/sub", 0),
					executor.BindMount("/cache", cache, false),
				}, executor.Process{Args: sh("grep -c ' /cache/sub tmpfs ' /proc/mounts; echo x > /cache/sub/f; echo y > /cache/g")})
				if err != nil {
					t.Fatalf("Run: %v (stderr %q)", err, errOut)
				}
				if out != "1\n" {
					t.Errorf("output %q: want /cache/sub mounted as tmpfs", out)
				}
				entries, _ := os.ReadDir(cache)
				if len(entries) != 1 || entries[0].Name() != "g" {
					t.Errorf("cache dir holds %v, want only g (the mount point sub removed, tmpfs writes gone)", entries)
				}
			})

			t.Run("mount point inside a read-only mount", func(t *testing.T) {
				src := t.TempDir()
				root, _ := overlayRoot(t, lower, base)
				_, _, err := run(t, e, root, []executor.Mount{
					executor.BindMount("/src", src, true),
					executor.TmpfsMount("/src/node_modules", 0),
				}, executor.Process{Args: sh("true")})
				if err == nil || !strings.Contains(err.Error(), "/src/node_modules") || !strings.Contains(err.Error(), "read-only") {
					t.Fatalf("Run = %v, want an error naming /src/node_modules and read-only", err)
				}
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("error is not ErrInvalidArgument: %v", err)
				}
				if entries, _ := os.ReadDir(src); len(entries) != 0 {
					t.Errorf("the read-only source was modified: %v", entries)
				}
			})

			t.Run("symlinked destinations stay inside the rootfs", func(t *testing.T) {
				root, upper := overlayRoot(t, lower, base)
				out, errOut, err := run(t, e, root, []executor.Mount{
					executor.TmpfsMount("/abs-escape/m", 0),
					executor.TmpfsMount("/rel-escape/r", 0),
				}, executor.Process{Args: sh("echo a > " + outside + "/m/f; echo b > /r/f; grep -c -e ' " + outside + "/m tmpfs ' -e ' /r tmpfs ' /proc/mounts")})
				if err != nil {
					t.Fatalf("Run: %v (stderr %q)", err, errOut)
				}
				if out != "2\n" {
					t.Errorf("output %q: want both tmpfs mounts where the symlinks resolve inside the rootfs", out)
				}
				if entries, _ := os.ReadDir(outside); len(entries) != 0 {
					t.Errorf("a mount followed a symlink out of the rootfs: %s holds %v", outside, entries)
				}
				mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(outside))
				if err != nil || len(mounts) != 0 {
					t.Errorf("mounts on the host path: %v %v", mounts, err)
				}
				assertNotInUpper(t, upper, "r")
			})

			t.Run("dangling symlink destination", func(t *testing.T) {
				root, _ := overlayRoot(t, lower, base)
				_, _, err := run(t, e, root, []executor.Mount{executor.TmpfsMount("/dangling/x", 0)}, executor.Process{Args: sh("true")})
				if err == nil || !strings.Contains(err.Error(), "/dangling/x") || !strings.Contains(err.Error(), "symlink") {
					t.Fatalf("Run = %v, want an error naming /dangling/x and the symlink", err)
				}
				if _, err := os.Stat("/nonexistent"); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("/nonexistent was created on the host")
				}
			})

			t.Run("under /dev", func(t *testing.T) {
				dir := t.TempDir()
				writeFile(t, filepath.Join(dir, "f"), "dev-mount\n")
				root, _ := overlayRoot(t, lower, base)
				out, errOut, err := run(t, e, root, []executor.Mount{executor.BindMount("/dev/kiln", dir, true)},
					executor.Process{Args: sh("cat /dev/kiln/f; test -c /dev/null && echo devnull")})
				if err != nil {
					t.Fatalf("Run: %v (stderr %q)", err, errOut)
				}
				if out != "dev-mount\ndevnull\n" {
					t.Errorf("output %q", out)
				}
			})

			t.Run("directory over a file", func(t *testing.T) {
				root, _ := overlayRoot(t, lower, base)
				_, _, err := run(t, e, root, []executor.Mount{executor.TmpfsMount("/etc/afile", 0)}, executor.Process{Args: sh("true")})
				if err == nil || !strings.Contains(err.Error(), "/etc/afile") || !strings.Contains(err.Error(), "not a directory") {
					t.Fatalf("Run = %v, want an error naming /etc/afile: not a directory", err)
				}
			})
		})
	}
}

// assertNotInUpper fails if name (a mount point the executor created) was
// left in the snapshot's upper dir.
func assertNotInUpper(t *testing.T, upper, name string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(upper, name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point %s left in the upper dir (err %v)", name, err)
	}
}
