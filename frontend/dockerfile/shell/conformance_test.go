package shell

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// corpusDir holds the shell corpus copied byte for byte from BuildKit (see
// its README for the file formats).
var corpusDir = filepath.Join("..", "testdata", "conformance", "shell")

// envVarCase is one line of envVarTest.
type envVarCase struct {
	line     int
	input    string
	expected string // "error" means the expansion must fail
}

// readEnvVarTest loads the cases of envVarTest that apply on Linux.
func readEnvVarTest(t testing.TB) []envVarCase {
	data, err := os.ReadFile(filepath.Join(corpusDir, "envVarTest"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []envVarCase
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.Split(strings.TrimSpace(line), "|")
		if len(fields) != 3 {
			t.Fatalf("envVarTest:%d: want 3 fields, got %d", n, len(fields))
		}
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		switch fields[0] {
		case "A", "U":
		case "W":
			continue
		default:
			t.Fatalf("envVarTest:%d: unknown platform %q", n, fields[0])
		}
		cases = append(cases, envVarCase{line: n, input: fields[1], expected: fields[2]})
	}
	return cases
}

var envVarTestEnv = Map{"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}

func TestEnvVarCorpus(t *testing.T) {
	t.Parallel()
	cases := readEnvVarTest(t)
	if len(cases) < 200 {
		t.Fatalf("only %d cases read from envVarTest", len(cases))
	}
	for _, c := range cases {
		got, err := Lex{}.ProcessWord(c.input, envVarTestEnv)
		if c.expected == "error" {
			if err == nil {
				t.Errorf("envVarTest:%d: %q: want an error, got %q", c.line, c.input, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("envVarTest:%d: %q: %v", c.line, c.input, err)
			continue
		}
		if got != c.expected {
			t.Errorf("envVarTest:%d: %q: got %q, want %q", c.line, c.input, got, c.expected)
		}
	}
	t.Logf("%d envVarTest cases", len(cases))
}

// wordsCase is one case line of wordsTest with the environment in force.
type wordsCase struct {
	line     int
	input    string
	expected []string // []string{"error"} means the expansion must fail
	env      Map
}

func readWordsTest(t testing.TB) []wordsCase {
	data, err := os.ReadFile(filepath.Join(corpusDir, "wordsTest"))
	if err != nil {
		t.Fatal(err)
	}
	env := Map{}
	var cases []wordsCase
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			k, v, _ := strings.Cut(strings.TrimLeft(rest, " "), "=")
			next := Map{}
			for ek, ev := range env {
				next[ek] = ev
			}
			next[k] = v
			env = next
			continue
		}
		in, want, ok := strings.Cut(line, "|")
		if !ok || strings.Contains(want, "|") {
			t.Fatalf("wordsTest:%d: want exactly one '|'", n)
		}
		cases = append(cases, wordsCase{
			line:     n,
			input:    strings.TrimSpace(in),
			expected: strings.Split(strings.TrimLeft(want, " "), ","),
			env:      env,
		})
	}
	return cases
}

func TestWordsCorpus(t *testing.T) {
	t.Parallel()
	cases := readWordsTest(t)
	if len(cases) < 20 {
		t.Fatalf("only %d cases read from wordsTest", len(cases))
	}
	for _, c := range cases {
		got, err := Lex{}.ProcessWords(c.input, c.env)
		if err != nil {
			got = []string{"error"}
		}
		if diff := cmp.Diff(c.expected, got); diff != "" {
			t.Errorf("wordsTest:%d: %q (-want +got):\n%s", c.line, c.input, diff)
		}
	}
	t.Logf("%d wordsTest cases", len(cases))
}
