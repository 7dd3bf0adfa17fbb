package testutil

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"
)

// Dockerd is a Docker engine started for a test (Debian's docker.io
// package), for the clients that load images into one (buildx --load).
type Dockerd struct {
	// Host is its address, for DOCKER_HOST.
	Host string
	// Docker is the docker CLI to talk to it with.
	Docker string
}

// StartDockerd starts dockerd on a socket, data root and exec root of
// its own (no iptables rules, no bridge: containers get no network), and
// stops it when the test ends, unmounting what it leaves. The test is
// skipped when not root, when dockerd or the docker CLI is not installed
// (hack/test.sh installs docker.io), or when dockerd cannot start on this
// machine (its log says why).
func StartDockerd(t testing.TB) *Dockerd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("dockerd needs root")
	}
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		t.Skip("dockerd is not installed (apt-get install docker.io)")
	}
	cli, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("the docker CLI is not installed (apt-get install docker.io)")
	}
	data := t.TempDir()
	// The exec root holds containerd's sockets: a short path keeps them
	// under the 108-byte limit of a socket's name.
	run, err := os.MkdirTemp("/tmp", "kiln-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(run, "docker.sock")
	var log SyncBuffer
	cmd := exec.Command(bin, "--data-root", filepath.Join(data, "root"), "--exec-root", filepath.Join(run, "exec"),
		"--pidfile", filepath.Join(run, "docker.pid"), "--host", "unix://"+sock,
		"--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver", "overlay2")
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		// Its managed containerd is in the same process group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		UnmountUnder(data)
		UnmountUnder(run)
		_ = os.RemoveAll(run)
	})

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Skipf("dockerd could not start on this machine:\n%s", tailString(log.String(), 4000))
		default:
		}
		if resp, err := client.Get("http://docker/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return &Dockerd{Host: "unix://" + sock, Docker: cli}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("dockerd did not answer on %s within a minute:\n%s", sock, tailString(log.String(), 4000))
	return nil
}

// UnmountUnder unmounts (lazily) what is mounted at or below dir, deepest
// first: what a killed daemon left.
func UnmountUnder(dir string) {
	if _, err := os.Stat(dir); err == nil {
		_ = mount.UnmountRecursive(dir, unix.MNT_DETACH)
	}
}

// tailString is the end of s, at most n bytes.
func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
