package parser

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestParseDump(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "crlf", in: "FROM a\r\nRUN echo \\\r\n  hi\r\n", want: `(from "a")` + "\n" + `(run "echo   hi")`},
		{name: "bom", in: "\xEF\xBB\xBFFROM a\n", want: `(from "a")`},
		{name: "bom then directive", in: "\xEF\xBB\xBF# escape=`\nFROM a\nRUN x `\n y", want: `(from "a")` + "\n" + `(run "x  y")`},
		{name: "case insensitive", in: "from a\nRuN b", want: `(from "a")` + "\n" + `(run "b")`},
		{name: "hash inside line", in: "FROM a # x", want: `(from "a" "#" "x")`},
		{name: "unknown instruction", in: "FOO bar", want: `(foo "")`},
		{name: "onbuild with flags", in: "ONBUILD RUN --mount=type=cache,target=/x echo hi", want: `(onbuild (run ["--mount=type=cache,target=/x"] "echo hi"))`},
		{name: "onbuild onbuild", in: "ONBUILD ONBUILD RUN x", want: `(onbuild (onbuild (run "x")))`},
		{name: "empty onbuild", in: "ONBUILD", want: `(onbuild)`},
		{name: "quoted flag", in: `COPY --from="x y" --chmod=755 a b`, want: `(copy ["--from=x y" "--chmod=755"] "a" "b")`},
		{name: "utf8 flag", in: "COPY --x=é a b", want: `(copy ["--x=é"] "a" "b")`},
		{name: "escaped flag", in: `COPY --x=a\ b c d`, want: `(copy ["--x=a b"] "c" "d")`},
		{name: "flags only", in: "COPY --link", want: `(copy ["--link"])`},
		{name: "json with trailing text", in: `RUN ["echo","hello"]this is invalid`, want: `(run "[\"echo\",\"hello\"]this is invalid")`},
		{name: "copy quotes not special", in: `COPY ["a"] x`, want: `(copy "[\"a\"]" "x")`},
		{name: "healthcheck none", in: "HEALTHCHECK NONE", want: `(healthcheck "NONE")`},
		{name: "arg quotes kept", in: `ARG abc="123 456" def`, want: `(arg "abc=\"123 456\"" "def")`},
		{name: "label old form", in: "LABEL a b c", want: `(label "a" "b c" "")`},
		{name: "env empty", in: "ENV", want: `(env)`},
		{name: "lone escape line", in: "FROM a\n\\\n", want: `(from "a")`},
		{name: "heredoc body not dumped", in: "FROM a\nRUN <<EOF\necho hi\nEOF\n", want: `(from "a")` + "\n" + `(run "<<EOF")`},
		{name: "escape directive upper", in: "# ESCAPE=`\nFROM a\nRUN x\\`\ny", want: `(from "a")` + "\n" + `(run "x\\y")`},
		{name: "directive after blank", in: "\n# escape=`\nFROM a\nRUN a\\\nb", want: `(from "a")` + "\n" + `(run "ab")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := Parse(context.Background(), []byte(tt.in), "Dockerfile")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, res.Dump()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		want      string
		wantRange errdefs.Range
	}{
		{name: "empty", in: "", want: "Dockerfile: file with no instructions"},
		{name: "only comments", in: "# a\n\n#b\n", want: "Dockerfile: file with no instructions"},
		{name: "env no value", in: "FROM a\nENV PATH", want: "Dockerfile:2: ENV must have two arguments", wantRange: errdefs.Range{Start: 2, End: 2}},
		{name: "env missing =", in: "FROM a\nENV a=b c", want: `Dockerfile:2: syntax error - can't find = in "c". Must be of the form: name=value`, wantRange: errdefs.Range{Start: 2, End: 2}},
		{name: "label no value", in: "LABEL x", want: "Dockerfile:1: LABEL must have two arguments", wantRange: errdefs.Range{Start: 1, End: 1}},
		{name: "nested json", in: "FROM a\nCMD [ \"echo\", [ \"nested json\" ] ]", want: "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only", wantRange: errdefs.Range{Start: 2, End: 2}},
		{name: "nested json continued", in: "FROM a\nCMD [ \"echo\", \\\n\n [ 1 ] ]\nRUN x", want: "Dockerfile:2: when using", wantRange: errdefs.Range{Start: 2, End: 4}},
		{name: "bad escape", in: "# escape=x\nFROM a", want: "Dockerfile:1: invalid escape token \"x\": it must be ` or \\", wantRange: errdefs.Range{Start: 1, End: 1}},
		{name: "duplicate directive", in: "# escape=`\n# escape=\\\nFROM a", want: "Dockerfile:2: only one escape parser directive can be used (already set on line 1)", wantRange: errdefs.Range{Start: 2, End: 2}},
		{name: "unterminated heredoc", in: "FROM a\nRUN <<EOF\necho\n", want: `Dockerfile:2: unterminated heredoc EOF: no line "EOF" before the end of the file`, wantRange: errdefs.Range{Start: 2, End: 3}},
		{name: "long line", in: "FROM a\nRUN " + strings.Repeat("x", MaxLineSize), want: "Dockerfile:2: dockerfile line greater than max allowed size of 65535", wantRange: errdefs.Range{Start: 2, End: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(context.Background(), []byte(tt.in), "Dockerfile")
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %q, want prefix %q", err, tt.want)
			}
			var se *errdefs.SourceError
			if !errors.As(err, &se) {
				t.Fatalf("%T is not a SourceError", err)
			}
			if se.Range != tt.wantRange {
				t.Errorf("range %+v, want %+v", se.Range, tt.wantRange)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Error("not in the invalid-argument class")
			}
		})
	}
}

func TestNodeFields(t *testing.T) {
	t.Parallel()
	src := "# syntax=docker/dockerfile:1\n" +
		"# check=skip=JSONArgsRecommended\n" +
		"\n" +
		"# build compiles things\n" +
		"FROM  --platform=$BUILDPLATFORM golang AS build\n" +
		"#\n" +
		"# ignored\n" +
		"RUN   echo a \\\n" +
		"\n" +
		"  # comment in continuation\n" +
		"  b\n" +
		"CMD [\"a\", \"b\"]\n"
	res, err := Parse(context.Background(), []byte(src), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	want := []*Node{
		{
			Keyword: "FROM", Flags: []string{"--platform=$BUILDPLATFORM"}, Args: []string{"golang", "AS", "build"},
			ArgsText: "golang AS build", Original: "FROM  --platform=$BUILDPLATFORM golang AS build",
			Comments: []string{"syntax=docker/dockerfile:1", "check=skip=JSONArgsRecommended", "build compiles things"},
			Range:    errdefs.Range{Start: 5, End: 5},
		},
		{
			Keyword: "RUN", Args: []string{"echo a   b"}, ArgsText: "echo a   b", Original: "RUN   echo a   b",
			Comments: []string{"ignored"}, Range: errdefs.Range{Start: 8, End: 11},
		},
		{
			Keyword: "CMD", Args: []string{"a", "b"}, JSON: true, ArgsText: `["a", "b"]`, Original: `CMD ["a", "b"]`,
			Range: errdefs.Range{Start: 12, End: 12},
		},
	}
	if diff := cmp.Diff(want, res.Nodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	wantDirectives := Directives{
		Escape: '\\', Syntax: "docker/dockerfile:1", Check: "skip=JSONArgsRecommended",
		Lines: []DirectiveLine{{Name: "syntax", Value: "docker/dockerfile:1", Line: 1}, {Name: "check", Value: "skip=JSONArgsRecommended", Line: 2}},
	}
	if diff := cmp.Diff(wantDirectives, res.Directives); diff != "" {
		t.Errorf("directives (-want +got):\n%s", diff)
	}
	wantWarnings := []Warning{{Rule: "NoEmptyContinuation", Message: "Empty continuation line found in: RUN   echo a   b", Range: errdefs.Range{Start: 8, End: 11}}}
	if diff := cmp.Diff(wantWarnings, res.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if res.Range != (errdefs.Range{Start: 5, End: 12}) {
		t.Errorf("root range %+v", res.Range)
	}
}

func TestHeredocs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		want      []Heredoc
		wantRange errdefs.Range
		wantArgs  []string
	}{
		{
			name: "basic", in: "RUN <<EOF\necho hi\nEOF\n",
			want:      []Heredoc{{Name: "EOF", Content: "echo hi\n", Expand: true}},
			wantRange: errdefs.Range{Start: 1, End: 3}, wantArgs: []string{"<<EOF"},
		},
		{
			name: "chomp", in: "RUN <<-EOT bash\n\techo hi\n\tEOT\n",
			want:      []Heredoc{{Name: "EOT", Content: "\techo hi\n", Expand: true, Chomp: true}},
			wantRange: errdefs.Range{Start: 1, End: 3}, wantArgs: []string{"<<-EOT bash"},
		},
		{
			name: "quoted", in: "COPY <<'EOF' <<\"E2\" /dst/\n$A\nEOF\n$B\nE2\n",
			want: []Heredoc{
				{Name: "EOF", Content: "$A\n"},
				{Name: "E2", Content: "$B\n"},
			},
			wantRange: errdefs.Range{Start: 1, End: 5}, wantArgs: []string{"<<'EOF'", `<<"E2"`, "/dst/"},
		},
		{
			name: "escaped delimiter", in: "RUN cat <<\\EOF\n$x\nEOF",
			want:      []Heredoc{{Name: "EOF", Content: "$x\n"}},
			wantRange: errdefs.Range{Start: 1, End: 3}, wantArgs: []string{"cat <<\\EOF"},
		},
		{
			name: "fd and crlf", in: "RUN 3<<IN1 cat /dev/fd/3 \\\r\n && true\r\nline\r\n\r\nIN1\r\n",
			want:      []Heredoc{{Name: "IN1", FileDescriptor: 3, Content: "line\n\n", Expand: true}},
			wantRange: errdefs.Range{Start: 1, End: 5}, wantArgs: []string{"3<<IN1 cat /dev/fd/3  && true"},
		},
		{
			name: "onbuild", in: "ONBUILD RUN <<EOF\nx\nEOF\n",
			want:      []Heredoc{{Name: "EOF", Content: "x\n", Expand: true}},
			wantRange: errdefs.Range{Start: 1, End: 3},
		},
		{
			name: "json form has none", in: "RUN [\"<<EOF\"]\n",
			wantRange: errdefs.Range{Start: 1, End: 1}, wantArgs: []string{"<<EOF"},
		},
		{
			name: "quoted marker is text", in: "RUN echo '<<EOF'\n",
			wantRange: errdefs.Range{Start: 1, End: 1}, wantArgs: []string{"echo '<<EOF'"},
		},
		{
			name: "not for other instructions", in: "CMD cat <<EOF\n",
			wantRange: errdefs.Range{Start: 1, End: 1}, wantArgs: []string{"cat <<EOF"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := Parse(context.Background(), []byte(tt.in), "Dockerfile")
			if err != nil {
				t.Fatal(err)
			}
			n := res.Nodes[0]
			if diff := cmp.Diff(tt.want, n.Heredocs); diff != "" {
				t.Errorf("heredocs (-want +got):\n%s", diff)
			}
			if n.Range != tt.wantRange {
				t.Errorf("range %+v, want %+v", n.Range, tt.wantRange)
			}
			if tt.wantArgs != nil {
				if diff := cmp.Diff(tt.wantArgs, n.Args); diff != "" {
					t.Errorf("args (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestHeredocBody(t *testing.T) {
	t.Parallel()
	h := Heredoc{Content: "\t\ta\n\tb\n c\n", Chomp: true}
	if got, want := h.Body(), "a\nb\n c\n"; got != want {
		t.Errorf("Body() = %q, want %q", got, want)
	}
	h.Chomp = false
	if got := h.Body(); got != h.Content {
		t.Errorf("Body() without chomp = %q", got)
	}
}

func TestParseHeredoc(t *testing.T) {
	t.Parallel()
	tests := []struct {
		word string
		want *Heredoc
	}{
		{word: "<<EOF", want: &Heredoc{Name: "EOF", Expand: true}},
		{word: "<<-EOF", want: &Heredoc{Name: "EOF", Expand: true, Chomp: true}},
		{word: `<<"EOF"`, want: &Heredoc{Name: "EOF"}},
		{word: `<<E"O"F`, want: &Heredoc{Name: "EOF"}},
		{word: "12<<X", want: &Heredoc{Name: "X", FileDescriptor: 12, Expand: true}},
		{word: "<< EOF", want: &Heredoc{Name: "EOF", Expand: true}},
		{word: "<<", want: nil},
		{word: "<<<here", want: nil},
		{word: "a<<EOF", want: nil},
		{word: "<<EOF bar", want: nil},
		{word: `<<"EOF`, want: nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, ParseHeredoc(tt.word, 0)); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tt.word, diff)
		}
	}
}

// FuzzParse checks that the parser never panics, that every error is a
// SourceError and that a successful parse gives increasing, well-formed
// line ranges. The corpus Dockerfiles are its seeds.
func FuzzParse(f *testing.F) {
	for _, sub := range []string{"testfiles", "testfiles-negative"} {
		for _, dir := range caseDirs(f, sub) {
			src, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	f.Add([]byte("FROM a\nCOPY <<-\"EOF\" 3<<X /d\n\tx\nEOF\ny\nX\nONBUILD RUN <<A\nA\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		res, err := Parse(context.Background(), src, "Dockerfile")
		if err != nil {
			var se *errdefs.SourceError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is a %T, not a SourceError", err, err)
			}
			return
		}
		prevEnd := 0
		for _, n := range res.Nodes {
			if n.Range.Start <= prevEnd || n.Range.End < n.Range.Start {
				t.Fatalf("bad range %+v after line %d", n.Range, prevEnd)
			}
			prevEnd = n.Range.End
		}
		_ = res.Dump()
	})
}

// BenchmarkParse parses every positive corpus Dockerfile once per iteration.
func BenchmarkParse(b *testing.B) {
	var srcs [][]byte
	for _, dir := range caseDirs(b, "testfiles") {
		src, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
		if err != nil {
			b.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	b.ResetTimer()
	for range b.N {
		for _, src := range srcs {
			if _, err := Parse(context.Background(), src, "Dockerfile"); err != nil {
				b.Fatal(err)
			}
		}
	}
}
