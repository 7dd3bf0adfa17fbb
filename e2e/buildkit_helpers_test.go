package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
)

// BuildKit's own clients drive kilnd in these tests: buildctl and docker
// buildx at the versions hack/test.sh pins and builds into bin/tools.

// bkTool returns the path of a client hack/lib.sh pins and builds into
// bin/tools (testutil.BuildKitTool).
func bkTool(t *testing.T, name string) string {
	t.Helper()
	return testutil.BuildKitTool(t, name)
}

// bkResult is one buildctl or buildx run.
type bkResult struct {
	err            error
	stdout, stderr string
	steps          map[string]stepState // by step name, from rawjson progress
	logs           string               // every step's log lines, decoded
}

func (r bkResult) String() string {
	return "err: " + errString(r.err) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + tail(r.stderr, 4000)
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// ranSteps lists the Dockerfile steps that ran (not cached), FROM and
// named contexts left out.
func (r bkResult) ranSteps() []string {
	var out []string
	for _, s := range (buildResult{steps: r.steps}).ranSteps() {
		if !strings.HasPrefix(s, "[context ") {
			out = append(out, s)
		}
	}
	return out
}

// runTool runs a client binary with env added to the environment.
func runTool(t *testing.T, env []string, bin string, args ...string) bkResult {
	t.Helper()
	return runToolIn(t, env, nil, bin, args...)
}

// runToolIn is runTool with stdin.
func runToolIn(t *testing.T, env []string, stdin io.Reader, bin string, args ...string) bkResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	steps, logs := parseBKSteps(errb.String())
	return bkResult{err: err, stdout: out.String(), stderr: errb.String(), steps: steps, logs: logs}
}

// buildctl runs buildctl against the daemon.
func (e *bldEnv) buildctl(args ...string) bkResult {
	e.t.Helper()
	return runTool(e.t, nil, bkTool(e.t, "buildctl"), append([]string{"--addr", e.d.Addr}, args...)...)
}

// bkBuild runs buildctl build with the dockerfile.v0 frontend on dir
// (context and Dockerfile), rawjson progress and more flags.
func (e *bldEnv) bkBuild(dir string, args ...string) bkResult {
	e.t.Helper()
	base := []string{"build", "--progress", "rawjson", "--frontend", "dockerfile.v0", "--local", "context=" + dir, "--local", "dockerfile=" + dir}
	return e.buildctl(append(base, args...)...)
}

// parseBKSteps reads buildctl's rawjson progress (one SolveStatus per
// line) into step states and the steps' log text.
func parseBKSteps(out string) (map[string]stepState, string) {
	steps := map[string]stepState{}
	logs := map[string][]byte{}
	names := map[string]string{}
	var all strings.Builder
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var st struct {
			Vertexes []struct {
				Digest    string `json:"digest"`
				Name      string `json:"name"`
				Cached    bool   `json:"cached"`
				Completed string `json:"completed"`
				Error     string `json:"error"`
			} `json:"vertexes"`
			Logs []struct {
				Vertex string `json:"vertex"`
				Data   []byte `json:"data"`
			} `json:"logs"`
		}
		if json.Unmarshal(sc.Bytes(), &st) != nil {
			continue
		}
		for _, v := range st.Vertexes {
			names[v.Digest] = v.Name
			s := steps[v.Name]
			s.cached = s.cached || v.Cached
			s.ran = s.ran || (!v.Cached && v.Completed != "" && v.Error == "")
			if v.Error != "" {
				s.errText = v.Error
			}
			steps[v.Name] = s
		}
		for _, l := range st.Logs {
			logs[l.Vertex] = append(logs[l.Vertex], l.Data...)
			all.Write(l.Data)
		}
	}
	for dgst, data := range logs {
		name, ok := names[dgst]
		if !ok {
			continue
		}
		s := steps[name]
		if _, reason, ok := strings.Cut(string(data), "cache miss: "); ok {
			s.reason, _, _ = strings.Cut(reason, "\n")
		}
		steps[name] = s
	}
	return steps, all.String()
}

// readMetadata reads a --metadata-file.
func readMetadata(t *testing.T, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return m
}

func metadataDigest(t *testing.T, file string) string {
	t.Helper()
	d, _ := readMetadata(t, file)["containerimage.digest"].(string)
	if d == "" {
		t.Fatalf("%s has no containerimage.digest", file)
	}
	return d
}
