package shell

import (
	"errors"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestExpansionLimit(t *testing.T) {
	t.Parallel()
	half := strings.Repeat("x", MaxExpansion/2)
	big := strings.Repeat("y", 3*MaxExpansion/2) // e.g. a --build-arg
	tests := []struct {
		name    string
		word    string
		env     Map
		lex     Lex
		tooLong bool
	}{
		{name: "two halves fit", word: "$H$H", env: Map{"H": half}},
		{name: "three halves", word: "$H$H$H", env: Map{"H": half}, tooLong: true},
		{name: "in double quotes", word: `"$H$H$H"`, env: Map{"H": half}, tooLong: true},
		{name: "in a default", word: "${U:-$H$H$H}", env: Map{"H": half}, tooLong: true},
		{name: "in an alternative", word: "${H:+$H$H$H}", env: Map{"H": half}, tooLong: true},
		{name: "replace all", word: "${S//?/$H}", env: Map{"S": "abc", "H": half}, tooLong: true},
		{name: "replace all, empty matches", word: "${S//*/$H}", env: Map{"S": "abc", "H": half}},
		{name: "replace all that fits", word: "${S//?/xx}", env: Map{"S": half}},
		{name: "heredoc mode", word: "$H\n$H\n$H\n", env: Map{"H": half}, lex: Lex{SkipQuotes: true}, tooLong: true},
		{name: "one value larger than the limit", word: "$B", env: Map{"B": big}, tooLong: true},
		// What is written counts on top: a long literal word (a heredoc
		// body) may still expand variables.
		{name: "long literal", word: strings.Repeat("z", 2*MaxExpansion) + "$H", env: Map{"H": half}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := tt.lex.Process(tt.word, tt.env)
			if tt.tooLong {
				if !errors.Is(err, ErrExpansionTooLarge) {
					t.Fatalf("got %v, want ErrExpansionTooLarge", err)
				}
				if !strings.Contains(err.Error(), "more than 1 MiB") {
					t.Errorf("message %q does not name the limit", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Value) > len(tt.word)+MaxExpansion {
				t.Errorf("expanded to %d bytes", len(r.Value))
			}
		})
	}
}

// TestReplaceAllMatchesRegexp checks the bounded ${name//pat/repl} against
// regexp's ReplaceAllLiteralString, which it replaces.
func TestReplaceAllMatchesRegexp(t *testing.T) {
	t.Parallel()
	for _, value := range []string{"", "a", "abc", "aXbXc", "안녕x", "\xffab\xfe", "XXX"} {
		for _, pat := range []string{"?", "*", "X", "X*", "*X", "a?", "**"} {
			toks, err := parsePattern(pat, '\\')
			if err != nil {
				t.Fatal(err)
			}
			re := regexp.MustCompile(mustPattern(t, toks))
			want := re.ReplaceAllLiteralString(value, "<>")
			got, err := replaceAll(re, value, "<>", 1<<20)
			if err != nil || got != want {
				t.Errorf("%q // %q: got %q, %v; want %q", value, pat, got, err, want)
			}
		}
	}
}

func mustPattern(t *testing.T, toks []patTok) string {
	t.Helper()
	re, err := compilePattern(toks, true, false)
	if err != nil {
		t.Fatal(err)
	}
	return re.String()
}

func TestExpanderInstructionLimit(t *testing.T) {
	t.Parallel()
	third := strings.Repeat("x", MaxExpansion/3+3) // grows each "$T" by a third of the limit and a byte
	ex := NewExpander(Lex{}, Map{"T": third})
	for i := range 2 {
		if _, err := ex.ExpandWord("$T"); err != nil {
			t.Fatalf("word %d: %v", i, err)
		}
	}
	_, err := ex.ExpandWords("$T")
	if !errors.Is(err, ErrExpansionTooLarge) || !strings.Contains(err.Error(), "per instruction") {
		t.Fatalf("third word: got %v, want the per-instruction limit", err)
	}
}

// TestExpansionBombMemory expands ARG a<N>=${a<N-1>} x4, as a Dockerfile
// of a dozen short lines can: it stops at the limit, having allocated a
// small multiple of it rather than the gigabytes the chain asks for.
func TestExpansionBombMemory(t *testing.T) {
	env := Map{"a0": "0123456789"}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var err error
	level := 1
	for ; level <= 16 && err == nil; level++ {
		prev := "${a" + strconv.Itoa(level-1) + "}"
		var v string
		v, err = Lex{}.ProcessWord(prev+prev+prev+prev, env)
		env["a"+strconv.Itoa(level)] = v
	}
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrExpansionTooLarge) {
		t.Fatalf("the chain expanded to level 16 without an error")
	}
	if level > 10 {
		t.Errorf("stopped at level %d, want the first level past 1 MiB (9)", level-1)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("allocated %d MiB, want a small multiple of the 1 MiB limit", alloc>>20)
	}
}
