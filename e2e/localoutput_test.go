package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestLocalOutputNonRootClient: a kiln run by an ordinary user writes a
// type=local output that belongs to that user (as buildctl's does), with
// the image's modes, read-only directories included, and files that two
// steps copied from one context file are two files (issue 12 item 6).
func TestLocalOutputNonRootClient(t *testing.T) {
	kilnd, kiln := binaries(t)
	const uid, gid = 4321, 4321
	reg := testutil.StartDistribution(t, testutil.DistributionOptions{})
	testutil.PushImage(t, reg.Ref("library/busybox:latest"), testutil.BusyboxImage(t, testutil.HostPlatform()), reg.RemoteOptions()...)
	cfg := fmt.Sprintf("[grpc]\ngid = %d\n[registry.\"docker.io\"]\nmirrors = [%q]\n[registry.%q]\nhttp = true\n", gid, reg.Host, reg.Host)
	d := testutil.StartDaemon(t, kilnd, testutil.WithDaemonConfig(cfg))
	if err := os.Chmod(filepath.Dir(d.Socket), 0o711); err != nil {
		t.Fatal(err)
	}

	// A directory the user owns, reachable by it (t.TempDir is 0700).
	home, err := os.MkdirTemp("", "kiln-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	ctxDir := filepath.Join(home, "ctx")
	writeFiles(t, ctxDir, map[string]string{
		"Dockerfile": `FROM busybox AS b
RUN mkdir -p /out/ro && echo x > /out/ro/f && chmod 0555 /out/ro && chown -R 11:22 /out && echo s > /out/suid && chmod 4755 /out/suid
FROM scratch
COPY --from=b /out /
COPY a.txt /one/
COPY a.txt /two/
`,
		"a.txt": "shared\n",
	})
	for _, p := range []string{home, ctxDir, filepath.Join(ctxDir, "Dockerfile"), filepath.Join(ctxDir, "a.txt")} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(home, "out")
	// The test binaries' directory is private to root: the user runs a copy.
	bin, err := os.ReadFile(kiln)
	if err != nil {
		t.Fatal(err)
	}
	kiln = filepath.Join(home, "kiln")
	if err := os.WriteFile(kiln, bin, 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kiln, "--addr", d.Addr, "build", "--progress", "plain", "-o", "type=local,dest="+out, ctxDir)
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("kiln build as uid %d: %v\n%s\nkilnd:\n%s", uid, err, log.String(), tail(d.Stderr(), 2000))
	}

	err = filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s is owned by %d:%d, want the client's %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{"ro": os.ModeDir | 0o555, "ro/f": 0o644, "suid": os.ModeSetuid | 0o755} {
		fi, err := os.Lstat(filepath.Join(out, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode(), want)
		}
	}
	one, err1 := os.Stat(filepath.Join(out, "one/a.txt"))
	two, err2 := os.Stat(filepath.Join(out, "two/a.txt"))
	if err1 != nil || err2 != nil {
		t.Fatalf("one/a.txt, two/a.txt: %v, %v", err1, err2)
	}
	if os.SameFile(one, two) {
		t.Errorf("one/a.txt and two/a.txt are hard links of each other: editing one would change the other")
	}
}
