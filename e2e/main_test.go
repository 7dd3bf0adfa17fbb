package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/internal/testutil"
)

// The binaries are built once per test run, when the first test asks.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries returns the kilnd and kiln binaries, skipping the test under
// -short or without root.
func binaries(t *testing.T) (kilnd, kiln string) {
	t.Helper()
	testroot.RequireSlow(t, "end-to-end test: builds kilnd and kiln, and kilnd runs containers with runc")
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "kiln-e2e-bin")
		if buildErr != nil {
			return
		}
		for _, n := range []string{"kilnd", "kiln"} {
			if _, buildErr = testutil.BuildCommand(binDir, n); buildErr != nil {
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build binaries: %v", buildErr)
	}
	return filepath.Join(binDir, "kilnd"), filepath.Join(binDir, "kiln")
}

// env is one kilnd and a kiln to talk to it.
type env struct {
	t      *testing.T
	d      *testutil.Daemon
	kiln   string
	home   string // the kiln user's HOME (no docker logins)
	busy   string // the busybox fixture, a docker save tarball
	runDir string
}

// newEnv starts a kilnd on a temporary root.
func newEnv(t *testing.T, opts ...testutil.DaemonOption) *env {
	t.Helper()
	kilnd, kiln := binaries(t)
	e := &env{t: t, kiln: kiln, home: t.TempDir(), runDir: t.TempDir()}
	e.d = testutil.StartDaemon(t, kilnd, opts...)
	return e
}

// result is one kiln invocation's outcome.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs kiln with args (and stdin, if not nil) against the daemon.
func (e *env) run(stdin []byte, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kiln, append([]string{"--addr", e.d.Addr}, args...)...)
	cmd.Dir = e.runDir
	cmd.Env = append(os.Environ(), "HOME="+e.home, "DOCKER_CONFIG="+filepath.Join(e.home, ".docker"))
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("kiln %s: %v\nkilnd log:\n%s", strings.Join(args, " "), err, e.d.Stderr())
	}
	return r
}

// ok runs kiln and fails the test unless it exits 0.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.run(nil, args...)
	if r.code != 0 {
		e.t.Fatalf("kiln %s: %s\nkilnd log tail:\n%s", strings.Join(args, " "), r, tail(e.d.Stderr(), 2000))
	}
	return r
}

// fails runs kiln and checks that it exits with code and that stderr
// contains want.
func (e *env) fails(code int, want string, args ...string) result {
	e.t.Helper()
	r := e.run(nil, args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		e.t.Errorf("kiln %s: want exit %d and stderr containing %q; got %s", strings.Join(args, " "), code, want, r)
	}
	return r
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// importBusybox writes the busybox fixture as a docker save tarball and
// imports it as busybox:latest.
func (e *env) importBusybox() {
	e.t.Helper()
	img := testutil.BusyboxImage(e.t, testutil.HostPlatform())
	file := filepath.Join(e.t.TempDir(), "busybox.tar")
	ref, err := name.NewTag("busybox:latest")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := tarball.WriteToFile(file, ref, img); err != nil {
		e.t.Fatal(err)
	}
	e.busy = file
	r := e.ok("image", "import", file)
	if !strings.Contains(r.stdout, "Loaded image: busybox:latest") {
		e.t.Fatalf("kiln image import: %s", r)
	}
}

// helloContext writes the hello app's build context.
func (e *env) helloContext() string {
	e.t.Helper()
	dir := e.t.TempDir()
	files := map[string]string{
		"Dockerfile": `FROM busybox
COPY hello.txt /app/hello.txt
RUN echo "built by kiln" > /app/built.txt
WORKDIR /app
CMD ["cat", "hello.txt"]
`,
		"hello.txt": "Hello, Kiln!\n",
	}
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(data), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	return dir
}

// buildHello builds the hello app as name.
func (e *env) buildHello(name string) {
	e.t.Helper()
	e.ok("build", "--progress", "plain", "-t", name, e.helloContext())
}
