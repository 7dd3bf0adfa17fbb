package parser

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// corpusDir is the Dockerfile parser corpus copied byte for byte from
// BuildKit; its README (one level up) defines the dump format.
var corpusDir = filepath.Join("..", "testdata", "conformance", "dockerfile-parser")

// caseDirs lists the case directories under sub, sorted.
func caseDirs(t testing.TB, sub string) []string {
	entries, err := os.ReadDir(filepath.Join(corpusDir, sub))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(corpusDir, sub, e.Name()))
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("no cases in %s", sub)
	}
	return dirs
}

func TestConformancePositive(t *testing.T) {
	t.Parallel()
	dirs := caseDirs(t, "testfiles")
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(dir, "result"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Parse(context.Background(), src, "Dockerfile")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := res.Dump() + "\n"
			if got != string(want) {
				t.Errorf("dump differs (-want +got):\n%s", cmp.Diff(string(want), got))
			}
		})
	}
	t.Logf("%d positive cases", len(dirs))
}

func TestConformanceNegative(t *testing.T) {
	t.Parallel()
	dirs := caseDirs(t, "testfiles-negative")
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Parse(context.Background(), src, "Dockerfile")
			if err == nil {
				t.Fatalf("Parse succeeded, want an error; dump:\n%s", res.Dump())
			}
			if !strings.HasPrefix(err.Error(), "Dockerfile:") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	t.Logf("%d negative cases", len(dirs))
}

// TestConformanceLines checks testfile-line against expected-lines: the
// root's range, then each instruction's.
func TestConformanceLines(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(corpusDir, "testfile-line")
	src, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "expected-lines"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Parse(context.Background(), src, "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	fmt.Fprintf(&got, "root %d %d\n", res.Range.Start, res.Range.End)
	for _, n := range res.Nodes {
		fmt.Fprintf(&got, "child %d %d\n", n.Range.Start, n.Range.End)
	}
	if diff := cmp.Diff(nonEmptyLines(string(want)), nonEmptyLines(got.String())); diff != "" {
		t.Errorf("line ranges (-want +got):\n%s", diff)
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
