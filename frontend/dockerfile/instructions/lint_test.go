package instructions

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/frontend/dockerfile/shell"
)

func TestLint(t *testing.T) {
	t.Parallel()
	src := "FROM base as Build\n" + // 1
		"MAINTAINER me\n" + // 2
		"ENV A 1\n" + // 3
		"LABEL a=b\n" + // 4
		"LABEL c d\n" + // 5
		"CMD run it\n" + // 6
		"run x \\\n" + // 7
		"\n" + // 8
		"  y\n" + // 9
		"ENTRYPOINT [\"ok\"]\n" + // 10
		"FROM base\n" + // 11
		"SHELL [\"/bin/bash\", \"-c\"]\n" + // 12
		"ENTRYPOINT exec app\n" + // 13
		"From base AS ok\n" // 14
	tests := []struct {
		name   string
		header string
		want   []string
	}{
		{name: "all", want: []string{
			"1 StageNameCasing: Stage name 'Build' should be lowercase",
			"1 FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
			"2 MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label",
			`3 LegacyKeyValueFormat: "ENV key=value" should be used instead of legacy "ENV key value" format`,
			`5 LegacyKeyValueFormat: "LABEL key=value" should be used instead of legacy "LABEL key value" format`,
			"6 JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals",
			"7 NoEmptyContinuation: Empty continuation line found in: run x   y",
			"7 ConsistentInstructionCasing: Command 'run' should match the case of the command majority (uppercase)",
			"14 ConsistentInstructionCasing: Command 'From' should be consistently cased",
		}},
		{name: "skip some", header: "# check=skip=StageNameCasing,jsonargsrecommended,LegacyKeyValueFormat,ConsistentInstructionCasing\n", want: []string{
			"2 FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
			"3 MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label",
			"8 NoEmptyContinuation: Empty continuation line found in: run x   y",
		}},
		{name: "skip all", header: "# check=skip=all;error=true\n", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			df, err := Parse(context.Background(), []byte(tt.header+src), "Dockerfile")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range df.Warnings {
				got = append(got, fmt.Sprintf("%d %s: %s", w.Range.Start, w.Rule, w.Message))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	df, err := Parse(context.Background(), []byte("# check=skip=all;error=true\n"+src), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Checks{SkipAll: true, Error: true}); !cmp.Equal(want, df.Checks) {
		t.Errorf("checks %+v, want %+v", df.Checks, want)
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		word string
		want string
	}{
		{"COPPY", "COPY"}, {"RNU", "RUN"}, {"fntrypoint", "ENTRYPOINT"}, {"healtcheck", "HEALTHCHECK"},
		{"FOO", ""}, {"X", ""}, {"ENVIRONMENT", ""},
	}
	for _, tt := range tests {
		got, _ := suggest(tt.word, instructionNames)
		if got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}

// FuzzParse checks that Parse and Expand never panic and that every error
// they return names the file. The parser corpus Dockerfiles are its seeds.
func FuzzParse(f *testing.F) {
	dir := filepath.Join("..", "testdata", "conformance", "dockerfile-parser")
	for _, sub := range []string{"testfiles", "testfiles-negative"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			src, err := os.ReadFile(filepath.Join(dir, sub, e.Name(), "Dockerfile"))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	f.Add([]byte("ARG X=1\nFROM a AS b\nRUN --mount=type=cache,target=$X --network=none <<EOF\nx\nEOF\n" +
		"COPY --chmod=u+x --from=b <<A /d\nA\nADD --checksum=$X https://h/r.git#main:sub /\nEXPOSE $X\nONBUILD COPY a b\n"))
	env := shell.Map{"X": "1", "A": "a b"}
	f.Fuzz(func(t *testing.T, src []byte) {
		df, err := Parse(context.Background(), src, "Dockerfile")
		if err != nil {
			if len(err.Error()) < len("Dockerfile:") || err.Error()[:len("Dockerfile")] != "Dockerfile" {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, s := range df.Stages {
			_, _ = s.From.Expand(shell.NewExpander(shell.Lex{}, env))
			for _, c := range s.Commands {
				if _, err := Expand(c, shell.NewExpander(shell.Lex{Escape: df.Directives.Escape}, env)); err != nil && c.Loc().Range.Start == 0 {
					t.Fatalf("expand error without a line: %v", err)
				}
			}
		}
	})
}
