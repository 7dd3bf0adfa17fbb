package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunCtrlC interrupts kiln run and checks that the container is gone.
func TestRunCtrlC(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.importBusybox()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kiln, "--addr", e.d.Addr, "run", "busybox", "sh", "-c", "echo started; exec sleep 4321")
	cmd.Env = append(os.Environ(), "HOME="+e.home)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "started\n" {
		t.Fatalf("first output line %q, %v", line, err)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Errorf("kiln run after Ctrl-C: %v; want exit code 130", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("kiln run took %s to stop after Ctrl-C", d)
	}

	// The daemon kills and deletes the container and its snapshot.
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := sleepers("4321")
		runc, _ := exec.Command("runc", "--root", filepath.Join(e.d.Root, "executor", "runc-state"), "list", "-q").Output()
		active := strings.Contains(e.ok("du", "--verbose").stdout, "active")
		if len(left) == 0 && strings.TrimSpace(string(runc)) == "" && !active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Ctrl-C: processes %v, containers %q, active snapshot %v", left, runc, active)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The daemon is fine.
	if r := e.ok("run", "busybox", "echo", "again"); r.stdout != "again\n" {
		t.Errorf("run after Ctrl-C: %s", r)
	}
}

// sleepers returns the pids of "sleep <arg>" processes.
func sleepers(arg string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Join(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), " ") == "sleep "+arg {
			pids = append(pids, d.Name())
		}
	}
	return pids
}
