package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// kilnDebug runs "kiln <args>" with the debug command registered, and
// reports the exit code and output the way run does.
func kilnDebug(stdin string, args ...string) (code int, stdout, stderr string) {
	root := newRootCmd()
	if c, _, err := root.Find([]string{"debug"}); err != nil || c == root {
		root.AddCommand(newDebugCmd())
	}
	var out, errb bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errb)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(&errb, "error: %s\n", err)
		return 1, out.String(), errb.String()
	}
	return 0, out.String(), errb.String()
}

var parserCorpus = filepath.Join("..", "..", "frontend", "dockerfile", "testdata", "conformance", "dockerfile-parser")

func TestDebugParseCorpus(t *testing.T) {
	t.Parallel()
	dirs, err := os.ReadDir(filepath.Join(parserCorpus, "testfiles"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		dir := filepath.Join(parserCorpus, "testfiles", d.Name())
		want, err := os.ReadFile(filepath.Join(dir, "result"))
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := kilnDebug("", "debug", "parse", filepath.Join(dir, "Dockerfile"))
		if code != 0 || stderr != "" {
			t.Errorf("%s: exit %d, stderr %q", d.Name(), code, stderr)
		}
		if stdout != string(want) {
			t.Errorf("%s: output differs from result:\n%s", d.Name(), stdout)
		}
	}
	negs, err := os.ReadDir(filepath.Join(parserCorpus, "testfiles-negative"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range negs {
		path := filepath.Join(parserCorpus, "testfiles-negative", d.Name(), "Dockerfile")
		code, stdout, stderr := kilnDebug("", "debug", "parse", path)
		if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "error: "+path+":") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", d.Name(), code, stdout, stderr)
		}
	}
}

func TestDebugParse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "# check=skip=JSONArgsRecommended\nFROM busybox AS Build\nMAINTAINER me\nCMD echo hi\n")
	secrets := write("secrets", "FROM busybox\nARG NPM_TOKEN\nENV DB_PASSWORD=x\n")
	badSyntax := write("bad-syntax", "FROM busybox\n\nENV PATH\n")
	badInstr := write("bad-instr", "FROM busybox\nCOPPY a b\n")
	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "file", args: []string{"debug", "parse", good}, wantStdout: "(from \"busybox\" \"AS\" \"Build\")\n(maintainer \"me\")\n(cmd \"echo hi\")\n"},
		{name: "stdin", stdin: "RUN <<EOF\nx\nEOF\n", args: []string{"debug", "parse", "-"}, wantStdout: "(run \"<<EOF\")\n"},
		{name: "syntax error", args: []string{"debug", "parse", badSyntax}, wantCode: 1, wantStderr: "error: " + badSyntax + ":3: ENV must have two arguments\n"},
		{name: "stdin error", stdin: "# escape=x\nFROM a", args: []string{"debug", "parse", "-"}, wantCode: 1, wantStderr: "error: <stdin>:1: invalid escape token \"x\": it must be ` or \\\n"},
		{name: "unknown instruction is syntax", args: []string{"debug", "parse", badInstr}, wantStdout: "(from \"busybox\")\n(coppy \"\")\n"},
		{name: "check rejects", args: []string{"debug", "parse", "--check", badInstr}, wantCode: 1, wantStderr: "error: " + badInstr + ":2: unknown instruction: COPPY (did you mean COPY?)\n"},
		{name: "check warns", args: []string{"debug", "parse", "--check", good},
			wantStdout: "(from \"busybox\" \"AS\" \"Build\")\n(maintainer \"me\")\n(cmd \"echo hi\")\n",
			wantStderr: "warning: " + good + ":2: StageNameCasing: Stage name 'Build' should be lowercase\n" +
				"warning: " + good + ":3: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label\n"},
		{name: "check warns about secrets", args: []string{"debug", "parse", "--check", secrets},
			wantStdout: "(from \"busybox\")\n(arg \"NPM_TOKEN\")\n(env \"DB_PASSWORD\" \"x\" \"=\")\n",
			wantStderr: "warning: " + secrets + ":2: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"NPM_TOKEN\")\n" +
				"warning: " + secrets + ":3: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"DB_PASSWORD\")\n"},
		{name: "missing file", args: []string{"debug", "parse", filepath.Join(dir, "nope")}, wantCode: 1,
			wantStderr: "error: read Dockerfile: open " + filepath.Join(dir, "nope") + ": no such file or directory\n"},
		{name: "no file", args: []string{"debug", "parse"}, wantCode: 1, wantStderr: "error: accepts 1 arg(s), received 0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := kilnDebug(tt.stdin, tt.args...)
			if code != tt.wantCode || stdout != tt.wantStdout || stderr != tt.wantStderr {
				t.Errorf("got exit %d\nstdout %q\nstderr %q\nwant exit %d\nstdout %q\nstderr %q",
					code, stdout, stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestDebugSubcommands(t *testing.T) {
	t.Parallel()
	cmd := newDebugCmd()
	names := map[string]*cobra.Command{}
	for _, c := range cmd.Commands() {
		names[c.Name()] = c
	}
	if names["parse"] == nil {
		t.Fatalf("debug has no parse subcommand: %v", names)
	}
	code, stdout, _ := kilnDebug("", "debug")
	if code != 0 || !strings.Contains(stdout, "parse") {
		t.Errorf("kiln debug: exit %d, output %q", code, stdout)
	}
}
