package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/client"
	"github.com/kiln-build/kiln/internal/testutil"
)

// The end-to-end tests run the real kilnd binary, built once per test run.
var (
	buildOnce sync.Once
	kilndBin  string
	buildErr  error
)

func kilnd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs kilnd (skipped with -short)")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kilnd-e2e")
		if err != nil {
			buildErr = err
			return
		}
		kilndBin, buildErr = testutil.BuildCommand(dir, "kilnd")
	})
	if buildErr != nil {
		t.Fatalf("build kilnd: %v", buildErr)
	}
	return kilndBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if kilndBin != "" {
		os.RemoveAll(filepath.Dir(kilndBin))
	}
	os.Exit(code)
}

func TestE2EInfoAndSIGTERM(t *testing.T) {
	t.Parallel()
	bin := kilnd(t)
	d := testutil.StartDaemon(t, bin, testutil.WithDaemonArgs("--addr", "tcp://127.0.0.1:0"))
	got := info(t, dial(t, d.Addr))
	if got.Root != d.Root || int(got.Pid) != d.Pid() || len(got.Listeners) != 2 {
		t.Errorf("Info = root %q pid %d listeners %v; want root %q pid %d and two listeners", got.Root, got.Pid, got.Listeners, d.Root, d.Pid())
	}
	tcp := got.Listeners[1]
	if again := info(t, dial(t, tcp)); again.Pid != got.Pid {
		t.Errorf("Info over %s answered pid %d", tcp, again.Pid)
	}
	if !strings.Contains(d.Stderr(), "UNPROTECTED TCP LISTENER") {
		t.Errorf("no warning for the plain TCP listener in the log:\n%s", d.Stderr())
	}

	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := d.Wait(15 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("kilnd after SIGTERM: code %d, %v\n%s", code, err, d.Stderr())
	}
	if _, err := os.Lstat(d.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s still exists after SIGTERM (%v)", d.Socket, err)
	}
	if !strings.Contains(d.Stderr(), "kilnd stopped") {
		t.Errorf("no clean stop in the log:\n%s", d.Stderr())
	}
}

func TestE2ESecondDaemonOnSameRootIsRefused(t *testing.T) {
	t.Parallel()
	bin := kilnd(t)
	first := testutil.StartDaemon(t, bin)
	sock := filepath.Join(t.TempDir(), "second.sock")
	if len(sock) > 100 {
		dir, err := os.MkdirTemp("", "kilnd")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		sock = filepath.Join(dir, "second.sock")
	}
	start := time.Now()
	code, _, stderr, err := testutil.RunKilnd(context.Background(), bin, 20*time.Second, "--root", first.Root, "--addr", "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("kilnd: another kilnd (pid %d) is using root %s\n", first.Pid(), first.Root)
	if code != 1 || stderr != want {
		t.Errorf("second kilnd: exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second kilnd took %s to give up; it should exit at once", d)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Error("the refused daemon created its socket")
	}
	// The first one is unharmed.
	info(t, dial(t, first.Addr))
}

func TestE2EConfigFile(t *testing.T) {
	t.Parallel()
	bin := kilnd(t)
	d := testutil.StartDaemon(t, bin, testutil.WithDaemonConfig(`
[worker.oci]
max-parallelism = 7
snapshotter = "native"
platforms = ["linux/riscv64"]

[[cache.blob]]
type = "filesystem"
path = "/var/lib/kiln/cache"
`))
	got := info(t, dial(t, d.Addr))
	if got.ConfigFile != d.ConfigFile || got.Worker.MaxParallelism != 7 || got.Worker.Snapshotter != "native" ||
		!strings.Contains(strings.Join(got.Worker.Platforms, ","), "linux/riscv64") ||
		strings.Join(got.CacheBackends, ",") != "filesystem:/var/lib/kiln/cache" {
		t.Errorf("Info does not reflect the config file: %v", got)
	}
}

func TestE2EValidate(t *testing.T) {
	t.Parallel()
	bin := kilnd(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	clean := filepath.Join(dir, "clean.toml")
	if err := os.WriteFile(clean, []byte("debug = false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte("[[registry.config]]\nhost = \"r.local:5000\"\nusername = \"ci\"\npassword = \"hunter2\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("[grpc]\naddress = [\"http://0.0.0.0:1234\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings
		stderr     string   // exact
		stderrPart string
	}{
		{
			name:       "good file, password masked, warning",
			args:       []string{"--config", good, "--validate"},
			code:       0,
			stdout:     []string{"# kilnd configuration from " + good, "password = '****'", "username = 'ci'"},
			stderrPart: good + ":4: [[registry.config]] password: plaintext password",
		},
		{
			name:   "bad file",
			args:   []string{"--config", bad, "--validate"},
			code:   1,
			stderr: "kilnd: " + bad + `:2: [grpc] address: bad address "http://0.0.0.0:1234": unsupported scheme "http://" (supported: unix://, tcp://)` + "\n",
		},
		{
			name:   "missing explicit file",
			args:   []string{"--config", filepath.Join(dir, "nope.toml"), "--validate"},
			code:   1,
			stderr: "kilnd: config file " + filepath.Join(dir, "nope.toml") + " does not exist\n",
		},
		{
			name:   "bad --addr",
			args:   []string{"--config", clean, "--addr", "udp://x:1", "--validate"},
			code:   1,
			stderr: `kilnd: flags: --addr: bad address "udp://x:1": unsupported scheme "udp://" (supported: unix://, tcp://)` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr, err := testutil.RunKilnd(context.Background(), bin, 20*time.Second, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			if strings.Contains(stdout+stderr, "hunter2") {
				t.Errorf("the password leaked:\n%s\n%s", stdout, stderr)
			}
			if tt.stderr != "" && stderr != tt.stderr {
				t.Errorf("stderr:\n got: %q\nwant: %q", stderr, tt.stderr)
			}
			if tt.stderrPart != "" && !strings.Contains(stderr, tt.stderrPart) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderrPart, stderr)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Errorf("stderr shows a Go stack:\n%s", stderr)
			}
		})
	}
}

func TestE2EClientAddressFromEnvironment(t *testing.T) {
	t.Parallel()
	bin := kilnd(t)
	d := testutil.StartDaemon(t, bin)
	env := map[string]string{client.EnvHost: d.Addr}
	addr := client.ResolveAddress("", func(k string) string { return env[k] })
	if addr != d.Addr {
		t.Fatalf("ResolveAddress with KILN_HOST = %q, want %q", addr, d.Addr)
	}
	info(t, dial(t, addr))
	if got := client.ResolveAddress("tcp://1.2.3.4:5", func(k string) string { return env[k] }); got != "tcp://1.2.3.4:5" {
		t.Errorf("--addr does not win over KILN_HOST: %q", got)
	}
}
