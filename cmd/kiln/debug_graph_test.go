package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of the kiln debug graph tests")

// TestDebugGraphGolden runs "kiln debug graph" on each directory of
// testdata/debug-graph: Dockerfile, args (one per line) and the expected
// stdout (golden.json) and stderr (golden.stderr). Run with -update to
// rewrite the expectations after a deliberate change.
func TestDebugGraphGolden(t *testing.T) {
	t.Parallel()
	dirs, err := os.ReadDir(filepath.Join("testdata", "debug-graph"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		dir := filepath.Join("testdata", "debug-graph", d.Name())
		t.Run(d.Name(), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join(dir, "args"))
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"debug", "graph", "--build-platform", "linux/amd64"}
			for _, a := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
				if a != "" {
					args = append(args, a)
				}
			}
			args = append(args, filepath.Join(dir, "Dockerfile"))
			code, stdout, stderr := kilnDebug("", args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, f := range []struct{ name, got string }{{"golden.json", stdout}, {"golden.stderr", stderr}} {
				path := filepath.Join(dir, f.name)
				if *update {
					if err := os.WriteFile(path, []byte(f.got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if f.got != string(want) {
					t.Errorf("%s differs from the output (run go test -run TestDebugGraphGolden -update and review the diff):\n%s", path, f.got)
				}
			}
		})
	}
}

func TestDebugGraph(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	df := write("Dockerfile", "FROM busybox AS base\nRUN true\nFROM base AS app\nCOPY --from=assets / /srv\nCOPY app.js /srv/\n")
	write(".dockerignore", "*.tmp\n")
	bad := write("bad", "FROM busybox AS a\nCOPY --from=a /x /x\n")
	note := "note: base images were not resolved: references are not pinned and their configs are empty\n"
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string // substrings
		wantStderr string
	}{
		{name: "dot", args: []string{"--format", "dot", "--build-context", "assets=./web", df},
			wantStdout: []string{"digraph kiln {", `"[base 2/2] RUN true\n`, `[context assets] load from client`}, wantStderr: note},
		{name: "dockerignore next to the context", args: []string{"--build-context", "assets=docker-image://nginx", df},
			wantStdout: []string{`"exclude": [`, `"*.tmp"`, `"ref": "docker.io/library/nginx:latest"`}, wantStderr: note},
		{name: "two platforms", args: []string{"--platform", "linux/amd64,linux/arm64", "--build-context", "assets=x", df},
			wantStdout: []string{`"platform": "linux/amd64"`, `"platform": "linux/arm64"`, `[linux/arm64 base 2/2] RUN true`}, wantStderr: note},
		{name: "bad format", args: []string{"--format", "yaml", df}, wantCode: 1, wantStderr: "error: invalid --format \"yaml\": want json or dot\n"},
		{name: "bad platform", args: []string{"--platform", "linux/", df}, wantCode: 1, wantStderr: "error: invalid --platform \"linux/\": "},
		{name: "bad context", args: []string{"--build-context", "x=https://example.com/x.tar", df}, wantCode: 1,
			wantStderr: "error: invalid --build-context \"x=https://example.com/x.tar\": only local directories and docker-image:// are supported\n"},
		{name: "missing target", args: []string{"--target", "ap", df}, wantCode: 1,
			wantStderr: "error: target stage \"ap\" could not be found (did you mean app?; stages: base, app)\n"},
		{name: "conversion error", args: []string{bad}, wantCode: 1,
			wantStderr: "error: " + bad + ":2: COPY --from=a: stage \"a\" depends on itself (circular dependency)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := kilnDebug("", append([]string{"debug", "graph", "--build-platform", "linux/amd64"}, tt.args...)...)
			if code != tt.wantCode || !strings.HasPrefix(stderr, tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", code, stderr, tt.wantCode, tt.wantStderr)
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
		})
	}
}
