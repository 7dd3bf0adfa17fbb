package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/daemon"
)

// startDaemon serves the API in-process on a unix socket.
// startDaemon runs an in-process kilnd on a temporary root and returns its
// address; opts are added to the daemon's (a backend, for instance).
func startDaemon(t *testing.T, opts ...daemon.Option) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kiln")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	addr := "unix://" + filepath.Join(dir, "kilnd.sock")
	cfg := config.DefaultFor(config.Env{UID: 0})
	cfg.Root = filepath.Join(dir, "root")
	cfg.GRPC.Address = []string{addr}
	cfg.Worker.OCI.Snapshotter = "native"
	srv, err := daemon.New(context.Background(), cfg, append([]daemon.Option{
		daemon.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), daemon.WithVersion("v1.2.3", "cafe")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("daemon did not stop")
		}
	})
	return addr
}

func kiln(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestInfo(t *testing.T) {
	addr := startDaemon(t)

	code, out, errOut := kiln("--addr", addr, "info")
	if code != 0 || errOut != "" {
		t.Fatalf("kiln info: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"Version:", "v1.2.3 (cafe)", "Listeners:", addr, "Snapshotter:", "native", "Max parallelism:", "Cache size:", "10GB", "Config:", "built-in defaults"} {
		if !strings.Contains(out, want) {
			t.Errorf("kiln info output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = kiln("--addr", addr, "info", "--format", "json")
	if code != 0 || errOut != "" {
		t.Fatalf("kiln info --format json: exit %d, stderr %q", code, errOut)
	}
	var got struct {
		Version   string   `json:"version"`
		Listeners []string `json:"listeners"`
		Worker    struct {
			Snapshotter    string `json:"snapshotter"`
			MaxParallelism int    `json:"maxParallelism"`
		} `json:"worker"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if got.Version != "v1.2.3" || got.Worker.Snapshotter != "native" || got.Worker.MaxParallelism != 0 || len(got.Listeners) != 1 {
		t.Errorf("JSON info = %+v", got)
	}

	t.Setenv("KILN_HOST", addr)
	code, out, _ = kiln("info", "--format", "{{.Worker.Snapshotter}} {{.Version}}")
	if code != 0 || out != "native v1.2.3\n" {
		t.Errorf("kiln info --format template with KILN_HOST: exit %d, %q", code, out)
	}
}

func TestErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		args []string
		want string
	}{
		{
			[]string{"--addr", "unix://" + sock, "info"},
			"error: cannot reach kilnd at unix://" + sock + ": no such socket. Start it with \"sudo kilnd --addr unix://" + sock + "\" (or set KILN_HOST / --addr).\n",
		},
		{[]string{"--addr", "localhost:1", "info"}, "error: bad kilnd address \"localhost:1\": want unix:///path/to/kilnd.sock or tcp://host:port\n"},
		{[]string{"info", "--bogus"}, "error: unknown flag: --bogus (see 'kiln info --help')\n"},
		{[]string{"info", "extra"}, "error: unknown command \"extra\" for \"kiln info\"\n"},
		// Checked before kilnd is reached.
		{[]string{"--addr", "unix://" + sock, "build", "-t", "MyApp:v1", "."},
			"error: -t: invalid image reference \"MyApp:v1\": repository names must be lowercase (myapp:v1)\n"},
	}
	for _, tt := range tests {
		code, out, errOut := kiln(tt.args...)
		if code != 1 || errOut != tt.want || out != "" {
			t.Errorf("kiln %v: exit %d, stdout %q, stderr:\n got: %q\nwant: %q", tt.args, code, out, errOut, tt.want)
		}
	}
}
