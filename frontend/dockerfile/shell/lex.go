package shell

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// eof is what the lexer's peek and next return at the end of the input.
const eof = -1

// Lex expands words. The zero value expands the way Docker does for
// instruction arguments: quotes removed, escapes processed with `\`, and an
// unset variable expands to the empty string. A Lex holds no state between
// calls and is safe for concurrent use.
type Lex struct {
	// Escape is the escape character: '\\' (the zero value means this) or
	// '`' as set by the `# escape=` parser directive.
	Escape rune
	// RawQuotes keeps quote characters in the output (their meaning still
	// applies: whitespace inside them does not split words).
	RawQuotes bool
	// RawEscapes keeps escape characters in the output.
	RawEscapes bool
	// SkipQuotes treats quotes as ordinary characters and lets the escape
	// character quote only `$`, '`' and itself, like the body of a POSIX
	// here-document with an unquoted delimiter. Heredoc bodies (COPY <<EOF)
	// are expanded in this mode.
	SkipQuotes bool
	// SkipUnset leaves a reference to an unset variable as written
	// ("$FOO", "${FOO:-x}") instead of expanding it.
	SkipUnset bool
}

// Env is the environment words are expanded against.
type Env interface {
	// Lookup returns a variable's value and whether it is set.
	Lookup(name string) (value string, ok bool)
}

// Map is an Env backed by a map.
type Map map[string]string

// Lookup implements Env.
func (m Map) Lookup(name string) (string, bool) {
	v, ok := m[name]
	return v, ok
}

// MapFromList builds a Map from "NAME=value" entries; an entry without "="
// sets NAME to the empty string, and a later entry wins over an earlier one.
func MapFromList(env []string) Map {
	m := make(Map, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// Result is the outcome of expanding one word.
type Result struct {
	// Value is the single-word result: all whitespace kept.
	Value string
	// Words is the word-list result: Value split on unquoted whitespace
	// (including whitespace produced by unquoted expansions), without empty
	// words. `<<` followed by whitespace stays in one word ("<<  EOF").
	Words []string
	// Used lists, in order of first use, every variable the word referenced.
	Used []string
	// Undefined lists the referenced variables that were unset and had no
	// default, alternative or error operator.
	Undefined []string
}

// Process expands word against env (nil means an empty environment).
func (l Lex) Process(word string, env Env) (Result, error) {
	if env == nil {
		env = Map(nil)
	}
	esc := l.Escape
	if esc == 0 {
		esc = '\\'
	}
	x := &lexer{lex: &l, esc: esc, src: word, env: env, limit: len(word) + MaxExpansion}
	value, words, err := x.processUntil(eof, l.RawEscapes)
	if err != nil {
		return Result{}, fmt.Errorf("failed to process %q: %w", word, err)
	}
	return Result{Value: value, Words: words, Used: x.used, Undefined: x.undefined}, nil
}

// ProcessWord expands word in single-word mode.
func (l Lex) ProcessWord(word string, env Env) (string, error) {
	r, err := l.Process(word, env)
	return r.Value, err
}

// ProcessWords expands word in word-list mode.
func (l Lex) ProcessWords(word string, env Env) ([]string, error) {
	r, err := l.Process(word, env)
	return r.Words, err
}

// References returns the names of the variables word refers to, without
// expanding anything. It reports an error for a word that does not lex
// (an unterminated quote or ${).
func (l Lex) References(word string) ([]string, error) {
	l.SkipUnset = true
	r, err := l.Process(word, nil)
	return r.Used, err
}

// lexer is the state of one Process call.
type lexer struct {
	lex       *Lex
	esc       rune
	src       string
	pos       int
	limit     int // the longest result allowed: len(src) + MaxExpansion
	env       Env
	used      []string
	undefined []string
	seen      map[string]bool // names in used; "!"+name for undefined
}

func (x *lexer) peek() rune {
	if x.pos >= len(x.src) {
		return eof
	}
	r, _ := utf8.DecodeRuneInString(x.src[x.pos:])
	return r
}

// peek2 returns the rune after the next one.
func (x *lexer) peek2() rune {
	if x.pos >= len(x.src) {
		return eof
	}
	_, n := utf8.DecodeRuneInString(x.src[x.pos:])
	if x.pos+n >= len(x.src) {
		return eof
	}
	r, _ := utf8.DecodeRuneInString(x.src[x.pos+n:])
	return r
}

// next consumes one rune and returns it with its bytes as written, so that
// invalid UTF-8 passes through unchanged.
func (x *lexer) next() (rune, string) {
	if x.pos >= len(x.src) {
		return eof, ""
	}
	r, n := utf8.DecodeRuneInString(x.src[x.pos:])
	raw := x.src[x.pos : x.pos+n]
	x.pos += n
	return r, raw
}

// words accumulates the word-list result.
type words struct {
	list []string
	cur  strings.Builder
}

// addChar adds an unquoted literal character: whitespace ends the word.
func (w *words) addChar(r rune, raw string) {
	if unicode.IsSpace(r) {
		w.flush()
		return
	}
	w.cur.WriteString(raw)
}

// addRaw adds text that never splits (quoted or escaped).
func (w *words) addRaw(s string) { w.cur.WriteString(s) }

// addExpanded adds the result of an unquoted expansion, which splits on
// whitespace.
func (w *words) addExpanded(s string) {
	for i, r := range s {
		_, n := utf8.DecodeRuneInString(s[i:])
		w.addChar(r, s[i:i+n])
	}
}

func (w *words) flush() {
	if w.cur.Len() > 0 {
		w.list = append(w.list, w.cur.String())
		w.cur.Reset()
	}
}

func (w *words) done() []string {
	w.flush()
	return w.list
}

// processUntil expands up to (and consumes) stop, or to the end of input
// when stop is eof. It is an error to reach the end when looking for stop.
func (x *lexer) processUntil(stop rune, rawEscapes bool) (string, []string, error) {
	var out strings.Builder
	var w words
	for {
		ch := x.peek()
		if ch == eof {
			break
		}
		if stop != eof && ch == stop {
			x.next()
			return out.String(), w.done(), nil
		}
		switch {
		case ch == '$':
			s, err := x.dollar()
			if err != nil {
				return "", nil, err
			}
			if err := appendBounded(&out, s, x.limit); err != nil {
				return "", nil, err
			}
			w.addExpanded(s)
		case ch == '\'' && !x.lex.SkipQuotes:
			s, err := x.singleQuote()
			if err != nil {
				return "", nil, err
			}
			if err := appendBounded(&out, s, x.limit); err != nil {
				return "", nil, err
			}
			w.addRaw(s)
		case ch == '"' && !x.lex.SkipQuotes:
			s, err := x.doubleQuote(rawEscapes)
			if err != nil {
				return "", nil, err
			}
			if err := appendBounded(&out, s, x.limit); err != nil {
				return "", nil, err
			}
			w.addRaw(s)
		case ch == x.esc:
			s, ok := x.escape(rawEscapes)
			if err := appendBounded(&out, s, x.limit); err != nil {
				return "", nil, err
			}
			w.addRaw(s)
			if !ok {
				return out.String(), w.done(), x.endError(stop)
			}
		case ch == '<' && x.peek2() == '<':
			// Keep a heredoc marker and the blanks after it in one word
			// ("<<  EOF"), so that heredoc detection sees it whole.
			x.next()
			x.next()
			s := "<<"
			if x.peek() == '-' {
				x.next()
				s += "-"
			}
			for r := x.peek(); r == ' ' || r == '\t'; r = x.peek() {
				_, raw := x.next()
				s += raw
			}
			if err := appendBounded(&out, s, x.limit); err != nil {
				return "", nil, err
			}
			w.addRaw(s)
		default:
			r, raw := x.next()
			if err := appendBounded(&out, raw, x.limit); err != nil {
				return "", nil, err
			}
			w.addChar(r, raw)
		}
	}
	return out.String(), w.done(), x.endError(stop)
}

// endError is the error for reaching the end of input while looking for
// stop, or nil when stop is eof.
func (x *lexer) endError(stop rune) error {
	if stop == eof {
		return nil
	}
	return fmt.Errorf("unexpected end of statement while looking for matching %c", stop)
}

// escape handles the escape character outside quotes. It returns the text
// to add and false when the input ended right after the escape (a trailing
// escape is dropped).
func (x *lexer) escape(rawEscapes bool) (string, bool) {
	_, escRaw := x.next()
	next := x.peek()
	if x.lex.SkipQuotes {
		// Here-document rules: only $, ` and the escape itself are quoted.
		if next != '$' && next != '`' && next != x.esc {
			return escRaw, true
		}
	}
	if next == eof {
		if rawEscapes {
			return escRaw, false
		}
		return "", false
	}
	_, raw := x.next()
	if rawEscapes {
		return escRaw + raw, true
	}
	return raw, true
}

func (x *lexer) singleQuote() (string, error) {
	var out strings.Builder
	_, q := x.next()
	if x.lex.RawQuotes {
		out.WriteString(q)
	}
	for {
		r, raw := x.next()
		switch r {
		case eof:
			return "", errors.New("unexpected end of statement while looking for matching single-quote")
		case '\'':
			if x.lex.RawQuotes {
				out.WriteString(raw)
			}
			return out.String(), nil
		}
		out.WriteString(raw)
	}
}

func (x *lexer) doubleQuote(rawEscapes bool) (string, error) {
	var out strings.Builder
	_, q := x.next()
	if x.lex.RawQuotes {
		out.WriteString(q)
	}
	for {
		switch ch := x.peek(); ch {
		case eof:
			return "", errors.New("unexpected end of statement while looking for matching double-quote")
		case '"':
			_, raw := x.next()
			if x.lex.RawQuotes {
				out.WriteString(raw)
			}
			return out.String(), nil
		case '$':
			s, err := x.dollar()
			if err != nil {
				return "", err
			}
			if err := appendBounded(&out, s, x.limit); err != nil {
				return "", err
			}
		default:
			_, raw := x.next()
			if ch == x.esc {
				switch x.peek() {
				case eof:
					// The loop reports the missing quote.
					continue
				case '"', '$', x.esc:
					_, next := x.next()
					if rawEscapes {
						out.WriteString(raw)
					}
					raw = next
				}
			}
			if err := appendBounded(&out, raw, x.limit); err != nil {
				return "", err
			}
		}
	}
}

// name reads a variable name after $ or ${: a run of letters, digits and
// '_'; all consecutive digits if it starts with one; or one special
// parameter character. It returns "" if there is no name.
func (x *lexer) name() string {
	start := x.pos
	ch := x.peek()
	switch {
	case ch == eof:
		return ""
	case unicode.IsDigit(ch):
		for unicode.IsDigit(x.peek()) {
			x.next()
		}
		return x.src[start:x.pos]
	case isSpecialParam(ch):
		x.next()
		return x.src[start:x.pos]
	}
	for ch := x.peek(); ch != eof && (unicode.IsLetter(ch) || unicode.IsDigit(ch) || ch == '_'); ch = x.peek() {
		x.next()
	}
	return x.src[start:x.pos]
}

// isSpecialParam reports whether r is one of POSIX's special parameters,
// which are never set in a Dockerfile.
func isSpecialParam(r rune) bool {
	switch r {
	case '@', '*', '#', '?', '-', '$', '!':
		return true
	}
	return false
}

// get looks a variable up and records its use. guarded is true when the
// reference has a default, alternative or error operator, which makes an
// unset variable deliberate rather than undefined.
func (x *lexer) get(name string, guarded bool) (string, bool) {
	if name == "" {
		return "", false
	}
	if r, _ := utf8.DecodeRuneInString(name); unicode.IsDigit(r) || isSpecialParam(r) {
		// Positional and special parameters are never set.
		return "", false
	}
	v, ok := x.env.Lookup(name)
	if x.seen == nil {
		x.seen = map[string]bool{}
	}
	if !x.seen[name] {
		x.seen[name] = true
		x.used = append(x.used, name)
	}
	if !ok && !guarded && !x.seen["!"+name] {
		x.seen["!"+name] = true
		x.undefined = append(x.undefined, name)
	}
	return v, ok
}
