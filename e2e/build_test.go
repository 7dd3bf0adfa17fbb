package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/kiln-build/kiln/internal/testutil"
)

// The build tests run the real kiln and kilnd binaries as root, with runc,
// against a docker-registry on 127.0.0.1 that serves as the docker.io
// mirror holding the busybox base image.

// bldEnv is a registry holding busybox and a kilnd mirroring docker.io to it.
type bldEnv struct {
	t     *testing.T
	kiln  string
	kilnd string
	reg   *testutil.Distribution
	d     *testutil.Daemon
	root  string
	cfg   string
}

func newBldEnv(t *testing.T) *bldEnv {
	t.Helper()
	kilnd, kiln := binaries(t)
	reg := testutil.StartDistribution(t, testutil.DistributionOptions{})
	testutil.PushImage(t, reg.Ref("library/busybox:latest"), testutil.BusyboxImage(t, testutil.HostPlatform()), reg.RemoteOptions()...)
	e := &bldEnv{t: t, kiln: kiln, kilnd: kilnd, reg: reg, root: t.TempDir()}
	e.cfg = fmt.Sprintf("[worker.oci]\nmax-parallelism = 4\n[registry.\"docker.io\"]\nmirrors = [%q]\n[registry.%q]\nhttp = true\n", reg.Host, reg.Host)
	e.start()
	return e
}

func (e *bldEnv) start() {
	e.t.Helper()
	e.d = testutil.StartDaemon(e.t, e.kilnd, testutil.WithDaemonConfig(e.cfg), testutil.WithDaemonRoot(e.root))
}

// kilnCmd returns a kiln command against the daemon.
func (e *bldEnv) kilnCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, e.kiln, append([]string{"--addr", e.d.Addr}, args...)...)
}

// buildResult is what one kiln build printed.
type buildResult struct {
	err    error
	stderr string
	steps  map[string]stepState // by step name
}

type stepState struct {
	cached  bool
	ran     bool
	errText string
	reason  string
}

// build runs kiln build --progress rawjson and collects the steps' states.
func (e *bldEnv) build(dir string, args ...string) buildResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e.kilnCmd(ctx, append(append([]string{"build", "--progress", "rawjson"}, args...), dir)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return buildResult{err: err, stderr: stderr.String(), steps: parseSteps(stderr.String())}
}

func parseSteps(out string) map[string]stepState {
	steps := map[string]stepState{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Vertex *struct {
				Name       string `json:"name"`
				Cached     bool   `json:"cached"`
				Completed  string `json:"completed"`
				Error      string `json:"error"`
				MissReason string `json:"missReason"`
			} `json:"vertex"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Vertex == nil {
			continue
		}
		v := ev.Vertex
		st := steps[v.Name]
		st.cached = st.cached || v.Cached
		st.ran = st.ran || (!v.Cached && v.Completed != "" && v.Error == "")
		if v.Error != "" {
			st.errText = v.Error
		}
		if v.MissReason != "" {
			st.reason = v.MissReason
		}
		steps[v.Name] = st
	}
	return steps
}

// ranSteps lists the Dockerfile steps that executed (not cached), leaving
// out FROM (a pull is not a step that runs).
func (r buildResult) ranSteps() []string {
	var out []string
	for name, st := range r.steps {
		if st.ran && strings.HasPrefix(name, "[") && !strings.HasPrefix(name, "[internal]") && !strings.Contains(name, "] FROM ") {
			out = append(out, name)
		}
	}
	return out
}

func (r buildResult) step(t *testing.T, prefix string) stepState {
	t.Helper()
	for name, st := range r.steps {
		if strings.Contains(name, prefix) {
			return st
		}
	}
	t.Fatalf("no step %q in the progress:\n%s", prefix, r.stderr)
	return stepState{}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuildCacheObservables(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM busybox\nARG USED=1\nCOPY a.txt /a.txt\nRUN echo $USED > /used && cat /a.txt\nRUN echo two > /two\n",
		"a.txt":      "A", "b.txt": "B",
	})
	if r := e.build(dir, "-t", "obs"); r.err != nil {
		t.Fatalf("cold build: %v\n%s", r.err, r.stderr)
	}
	// 1. A second identical build is fully cached.
	r := e.build(dir, "-t", "obs")
	if r.err != nil || len(r.ranSteps()) != 0 {
		t.Fatalf("identical rebuild ran %v (err %v)\n%s", r.ranSteps(), r.err, r.stderr)
	}
	// 2. COPY a.txt ignores b.txt; touching a.txt changes nothing; an
	// unused build arg changes nothing.
	writeFiles(t, dir, map[string]string{"b.txt": "B2"})
	future := time.Now().Add(time.Hour)
	_ = os.Chtimes(filepath.Join(dir, "a.txt"), future, future)
	r = e.build(dir, "-t", "obs", "--build-arg", "UNUSED=x")
	if r.err != nil || len(r.ranSteps()) != 0 {
		t.Errorf("b.txt change / a.txt touch / unused build arg re-ran %v (err %v)", r.ranSteps(), r.err)
	}
	// 3. A used ARG re-runs the RUNs after its declaration, and says why.
	r = e.build(dir, "-t", "obs", "--build-arg", "USED=2")
	if st := r.step(t, "> /used"); !st.ran || !strings.Contains(st.reason, "USED") {
		t.Errorf("used ARG change: RUN ran=%v reason=%q", st.ran, st.reason)
	}
	if st := r.step(t, "COPY a.txt"); !st.cached {
		t.Errorf("used ARG change re-ran COPY, which does not use it")
	}
	// 4. Editing one RUN line re-runs that step and those after it only.
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nARG USED=1\nCOPY a.txt /a.txt\nRUN echo $USED > /used && cat /a.txt\nRUN echo TWO > /two\n"})
	r = e.build(dir, "-t", "obs")
	if ran := r.ranSteps(); len(ran) != 1 || !strings.Contains(ran[0], "RUN echo TWO") {
		t.Errorf("editing the last RUN ran %v", ran)
	}
	if st := r.step(t, "RUN echo TWO"); !strings.Contains(st.reason, "command changed") {
		t.Errorf("miss reason of the edited RUN = %q", st.reason)
	}
	// 5. a.txt's content changes: COPY and everything after it re-run.
	writeFiles(t, dir, map[string]string{"a.txt": "A2"})
	r = e.build(dir, "-t", "obs")
	if st := r.step(t, "COPY a.txt"); !st.ran || st.reason != "a.txt changed" {
		t.Errorf("a.txt change: COPY ran=%v reason=%q", st.ran, st.reason)
	}
	if len(r.ranSteps()) != 3 {
		t.Errorf("a.txt change ran %v, want COPY and the two RUNs", r.ranSteps())
	}
	// 6. A new digest behind FROM busybox invalidates the stage.
	moved, err := mutate.AppendLayers(testutil.BusyboxImage(t, testutil.HostPlatform()), mustLayer(t))
	if err != nil {
		t.Fatal(err)
	}
	testutil.PushImage(t, e.reg.Ref("library/busybox:latest"), moved, e.reg.RemoteOptions()...)
	r = e.build(dir, "-t", "obs")
	if len(r.ranSteps()) != 3 {
		t.Errorf("after the base image moved, ran %v", r.ranSteps())
	}
	if st := r.step(t, "] FROM "); !strings.Contains(st.reason, "digest moved") {
		t.Errorf("FROM's miss reason after the base moved = %q", st.reason)
	}
	// 7. --no-cache re-runs everything.
	r = e.build(dir, "-t", "obs", "--no-cache")
	if len(r.ranSteps()) != 3 {
		t.Errorf("--no-cache ran %v", r.ranSteps())
	}
}

func mustLayer(t *testing.T) v1.Layer {
	t.Helper()
	l, err := random.Layer(256, "application/vnd.oci.image.layer.v1.tar")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestBuildFailureMessage(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN echo fine\nRUN echo failing && exit 3\n"})
	r := e.build(dir)
	if r.err == nil {
		t.Fatal("failing build succeeded")
	}
	for _, want := range []string{"error: Dockerfile:3", "RUN echo failing && exit 3", `"/bin/sh -c echo failing && exit 3" did not complete successfully: exit code: 3`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stderr)
		}
	}
	// The step before it was recorded; the failed one was not.
	r = e.build(dir)
	if st := r.step(t, "RUN echo fine"); !st.cached {
		t.Errorf("the successful step before the failure was not cached")
	}
}

func TestConcurrentBuildsRunStepsOnce(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	// The step counts its runs in a cache mount, which both builds share.
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN --mount=type=cache,target=/count,id=count sh -c 'echo run >> /count/runs; sleep 1'\n"})
	var wg sync.WaitGroup
	results := make([]buildResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.build(dir)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("build %d: %v\n%s", i, r.err, r.stderr)
		}
	}
	// Read the counter with a third build that prints it.
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN --mount=type=cache,target=/count,id=count wc -l < /count/runs > /n\n"})
	out := t.TempDir()
	if r := e.build(dir, "-o", "type=local,dest="+out); r.err != nil {
		t.Fatalf("reading the counter: %v\n%s", r.err, r.stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, "n"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.TrimSpace(string(b)); n != "1" {
		t.Errorf("two concurrent builds ran the shared step %s times, want 1", n)
	}
}

// leftovers lists runc containers and mounts the daemon's root still has.
func leftovers(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], root+"/") {
			out = append(out, "mount "+f[4])
		}
	}
	states, _ := filepath.Glob(filepath.Join(root, "executor", "*", "*", "state.json"))
	for _, s := range states {
		out = append(out, "container state "+s)
	}
	return out
}

func waitNoLeftovers(t *testing.T, root string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		l := leftovers(t, root)
		if len(l) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind after %s: %v", within, l)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCancelStopsSteps(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN echo started && sleep 60\n"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := e.kilnCmd(ctx, "build", "--progress", "plain", dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "started") {
			break
		}
	}
	// Ctrl-C on the client.
	_ = cmd.Process.Signal(os.Interrupt)
	go func() { _, _ = bufio.NewReader(stderr).WriteTo(new(bytes.Buffer)) }()
	_ = cmd.Wait()
	waitNoLeftovers(t, e.root, 3*time.Second)
}

func TestKill9Recovery(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM busybox\nCOPY f.txt /f.txt\nRUN --mount=type=cache,target=/c echo one > /one\nRUN echo started && sleep 60\n",
		"f.txt":      "f",
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := e.kilnCmd(ctx, "build", "--progress", "plain", dir)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "started") {
			break
		}
	}
	// The daemon dies in the middle of a step.
	if err := e.d.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = e.d.Wait(10 * time.Second)
	_ = cmd.Wait()

	// It restarts cleanly on the same root: leftovers are cleaned, the
	// step that finished is still cached, and the build completes.
	e.start()
	waitNoLeftovers(t, e.root, 5*time.Second)
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nCOPY f.txt /f.txt\nRUN --mount=type=cache,target=/c echo one > /one\nRUN echo two > /two\n"})
	r := e.build(dir, "-t", "after-crash")
	if r.err != nil {
		t.Fatalf("build after the crash: %v\n%s", r.err, r.stderr)
	}
	if st := r.step(t, "echo one > /one"); !st.cached {
		t.Errorf("the step that finished before the crash is not cached")
	}
}
