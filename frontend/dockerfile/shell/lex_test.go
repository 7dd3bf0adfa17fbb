package shell

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// TestExtraExpansions is the table of README §3.5: operators the corpus
// files do not cover, with the results of the reference implementation.
func TestExtraExpansions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		env     Map
		want    string
		wantErr string // substring of the error; "" means success
	}{
		{in: "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", env: Map{"FOO": "xxx", "BAR": ""}, want: "xxx  ccc"},
		{in: "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", env: Map{"FOO": "xxx", "BAR": ""}, want: "xxx bbb ccc"},
		{in: "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", env: Map{"FOO": "xxx", "BAR": ""}, want: "aaa bbb "},
		{in: "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", env: Map{"FOO": "xxx", "BAR": ""}, want: "aaa  "},
		{in: "${BAR?bbb}", env: Map{"BAR": ""}, want: ""},
		{in: "${BAR:?bbb}", env: Map{"BAR": ""}, wantErr: "BAR: bbb"},
		{in: "${VAR:?message here$ARG}", env: Map{"ARG": "x"}, wantErr: "message herex"},
		{in: "${VAR?}", env: Map{"ARG": "x"}, wantErr: "VAR: is not allowed to be unset"},
		{in: "${VAR:?}", env: Map{"VAR": ""}, wantErr: "VAR: is not allowed to be empty"},
		{in: "${FOO#*x*y}", env: Map{"FOO": "xxyy"}, want: "y"},
		{in: "${FOO##*x}", env: Map{"FOO": "xxyy"}, want: "yy"},
		{in: "${FOO%x}", env: Map{"FOO": "xxyy"}, want: "xxyy"},
		{in: `${FOO%%\**}`, env: Map{"FOO": "xx**"}, want: "xx"},
		{in: `${FOO#?\?}`, env: Map{"FOO": "???y"}, want: "?y"},
		{in: `${FOO#\x}`, env: Map{"FOO": "xxyy"}, wantErr: `invalid escape '\x'`},
		{in: "${FOO/$NEEDLE/$REPLACEMENT}", env: Map{"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"}, want: "https://google.de"},
		{in: "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", env: Map{"FOO": "/foo*/*/*.txt", "NEEDLE": `\*/`}, want: "/foo.*/*.txt - /foo..*.txt"},
		{in: `${FOO//\//\/}`, env: Map{"FOO": "/tmp/foo.txt"}, want: `\/tmp\/foo.txt`},
		{in: "${FOO//ww}", env: Map{"FOO": "xxyy"}, wantErr: "missing '/'"},
		{in: "${FOO:#}", env: Map{"FOO": "x"}, wantErr: "unsupported modifier (:#)"},
		{in: "${FOO=aaa}", env: Map{"FOO": "x"}, wantErr: "unsupported modifier (=)"},
		{
			in:   "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
			env:  Map{"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"},
			want: "something-v1.2.3.linux-arm-v7.tar.gz",
		},
		// More pattern behaviour.
		{in: "${FOO%.*}", env: Map{"FOO": "a.tar.gz"}, want: "a.tar"},
		{in: "${FOO%%.*}", env: Map{"FOO": "a.tar.gz"}, want: "a"},
		{in: "${FOO#*/}", env: Map{"FOO": "a/b/c"}, want: "b/c"},
		{in: "${FOO##*/}", env: Map{"FOO": "a/b/c"}, want: "c"},
		{in: "${FOO%?}", env: Map{"FOO": "안녕"}, want: "안"},
		{in: "${FOO/o/0}", env: Map{"FOO": "foo"}, want: "f0o"},
		{in: "${FOO//o/0}", env: Map{"FOO": "foo"}, want: "f00"},
		{in: "${FOO//o/$}", env: Map{"FOO": "foo"}, want: "f$$"},
		{in: "${FOO///x}", env: Map{"FOO": "abc"}, want: "abc"},
		{in: "${FOO/a*/x}", env: Map{"FOO": "ba\nb"}, want: "bx"},
		{in: "${UNSET#x}", want: ""},
		{in: `${FOO#\}}`, env: Map{"FOO": "}a"}, want: "a"},
		{in: `${FOO%\`, env: Map{"FOO": "a"}, wantErr: "missing '}'"},
		{in: "${FOO", wantErr: "missing '}'"},
		{in: "${FOO:", wantErr: "missing '}'"},
		{in: "${FOO/a", wantErr: "missing '/'"},
		{in: "${FOO/a/b", wantErr: "missing '}'"},
		{in: "${", wantErr: "missing '}'"},
		{in: "${}", wantErr: "bad substitution"},
		{in: `"unterminated`, wantErr: `failed to process "\"unterminated": unexpected end of statement while looking for matching double-quote`},
	}
	for _, tt := range tests {
		got, err := Lex{}.ProcessWord(tt.in, tt.env)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: got (%q, %v), want an error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWordsMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		env  Map
		want []string
	}{
		{in: "cat <<  EOF x", want: []string{"cat", "<<  EOF", "x"}},
		{in: "cat <<-\tEOF", want: []string{"cat", "<<-\tEOF"}},
		{in: "3<<IN1 cat", want: []string{"3<<IN1", "cat"}},
		{in: `a "" b`, want: []string{"a", "b"}},
		{in: "$PORTS 443", env: Map{"PORTS": "80 8080/udp"}, want: []string{"80", "8080/udp", "443"}},
		{in: `"$PORTS" 443`, env: Map{"PORTS": "80 8080"}, want: []string{"80 8080", "443"}},
		{in: "  ", want: nil},
	}
	for _, tt := range tests {
		got, err := Lex{}.ProcessWords(tt.in, tt.env)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	env := Map{"A": "a", "E": ""}
	tests := []struct {
		name string
		lex  Lex
		in   string
		want string
	}{
		{name: "raw quotes", lex: Lex{RawQuotes: true}, in: `x"$A b"'$A'`, want: `x"a b"'$A'`},
		{name: "raw escapes", lex: Lex{RawEscapes: true}, in: `\$A\\`, want: `\$A\\`},
		{name: "raw escapes in quotes", lex: Lex{RawEscapes: true}, in: `"\$A"`, want: `\$A`},
		{name: "skip unset", lex: Lex{SkipUnset: true}, in: "$A $B ${C} ${D:-x} ${E:-y} ${F#p} ${G/a/b}", want: "a $B ${C} ${D:-x} y ${F#p} ${G/a/b}"},
		{name: "backtick escape", lex: Lex{Escape: '`'}, in: "`$A\\n", want: `$A\n`},
		{name: "backtick in quotes", lex: Lex{Escape: '`'}, in: "\"`\"$A\"", want: `"a`},
		{name: "heredoc body", lex: Lex{SkipQuotes: true}, in: "echo \"$A\" '$A' \\$A \\n \\\\ x\\\n", want: "echo \"a\" 'a' $A \\n \\ x\\\n"},
		{name: "heredoc trailing escape", lex: Lex{SkipQuotes: true}, in: `a\`, want: `a\`},
	}
	for _, tt := range tests {
		got, err := tt.lex.ProcessWord(tt.in, env)
		if err != nil {
			t.Errorf("%s: %q: %v", tt.name, tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: %q: got %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestUsedAndUndefined(t *testing.T) {
	t.Parallel()
	env := Map{"SET": "1", "EMPTY": ""}
	tests := []struct {
		in            string
		wantUsed      []string
		wantUndefined []string
	}{
		{in: "plain", wantUsed: nil, wantUndefined: nil},
		{in: "$SET ${SET} $SET", wantUsed: []string{"SET"}},
		{in: "$NOPE $EMPTY", wantUsed: []string{"NOPE", "EMPTY"}, wantUndefined: []string{"NOPE"}},
		{in: "${A:-x} ${B+y} ${C-${D}}", wantUsed: []string{"A", "B", "D", "C"}, wantUndefined: []string{"D"}},
		{in: "${E#x} ${F/a/b}", wantUsed: []string{"E", "F"}, wantUndefined: []string{"E", "F"}},
		{in: "'$QUOTED' \\$ESC \"$DQ\"", wantUsed: []string{"DQ"}, wantUndefined: []string{"DQ"}},
		{in: "$1 $@ ${#}", wantUsed: nil},
	}
	for _, tt := range tests {
		r, err := Lex{}.Process(tt.in, env)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.wantUsed, r.Used); diff != "" {
			t.Errorf("%q: Used (-want +got):\n%s", tt.in, diff)
		}
		if diff := cmp.Diff(tt.wantUndefined, r.Undefined); diff != "" {
			t.Errorf("%q: Undefined (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestExpander(t *testing.T) {
	t.Parallel()
	ex := NewExpander(Lex{}, Map{"A": "1 2", "B": "b"})
	if got, err := ex.ExpandWord(`"$A"x`); err != nil || got != "1 2x" {
		t.Fatalf("ExpandWord: got (%q, %v)", got, err)
	}
	if got, err := ex.ExpandWords("$A $C"); err != nil || !cmp.Equal(got, []string{"1", "2"}) {
		t.Fatalf("ExpandWords: got (%q, %v)", got, err)
	}
	if got, err := ex.ExpandHeredoc("echo \"$B\" '${B}'\n"); err != nil || got != "echo \"b\" 'b'\n" {
		t.Fatalf("ExpandHeredoc: got (%q, %v)", got, err)
	}
	if _, err := ex.ExpandWord("${Z:?boom}"); err == nil || !strings.Contains(err.Error(), "Z: boom") {
		t.Fatalf("want the ? error, got %v", err)
	}
	if diff := cmp.Diff([]string{"A", "C", "B"}, ex.Used()); diff != "" {
		t.Errorf("Used (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"C"}, ex.Undefined()); diff != "" {
		t.Errorf("Undefined (-want +got):\n%s", diff)
	}
}

func TestReferences(t *testing.T) {
	t.Parallel()
	got, err := Lex{}.References(`$A-${B:-$C}\$D'$E'`)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"A", "C", "B"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := (Lex{}).References(`"open`); err == nil {
		t.Error("want an error for an unterminated quote")
	}
}

func TestMapFromList(t *testing.T) {
	t.Parallel()
	got := MapFromList([]string{"A=1", "B", "A=2=3", "C="})
	if diff := cmp.Diff(Map{"A": "2=3", "B": "", "C": ""}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// FuzzLex checks that expansion never panics, that invalid UTF-8 survives
// a plain word unchanged, and that word-list mode never yields empty words.
// The corpus files are its seeds.
func FuzzLex(f *testing.F) {
	for _, c := range readEnvVarTest(f) {
		f.Add(c.input)
	}
	for _, c := range readWordsTest(f) {
		f.Add(c.input)
	}
	f.Add("${FOO//\\//\\/} ${FOO%%\\**} ${A#?\\?} <<-  EOF \xff")
	env := Map{"FOO": "/a*b/c", "A": "x y", "EMPTY": ""}
	f.Fuzz(func(t *testing.T, word string) {
		for _, lex := range []Lex{{}, {RawQuotes: true, RawEscapes: true}, {SkipQuotes: true}, {SkipUnset: true, Escape: '`'}} {
			r, err := lex.Process(word, env)
			if err != nil {
				continue
			}
			for _, w := range r.Words {
				if w == "" {
					t.Fatalf("%+v: %q: empty word in %q", lex, word, r.Words)
				}
			}
		}
		if !strings.ContainsAny(word, "$'\"\\`<") && utf8.ValidString(word) {
			got, err := Lex{}.ProcessWord(word, env)
			if err != nil || got != word {
				t.Fatalf("%q: plain word changed: (%q, %v)", word, got, err)
			}
		}
	})
}
