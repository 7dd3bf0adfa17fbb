package shell

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

var (
	errMissingBrace    = errors.New("syntax error: missing '}'")
	errBadSubstitution = errors.New("syntax error: bad substitution")
)

// dollar expands a $name or ${...} reference; the lexer is at the '$'.
func (x *lexer) dollar() (string, error) {
	x.next()
	if x.peek() != '{' {
		name := x.name()
		if name == "" {
			return "$", nil
		}
		v, ok := x.get(name, false)
		if !ok && x.lex.SkipUnset {
			return "$" + name, nil
		}
		return v, nil
	}
	x.next()
	switch x.peek() {
	case eof:
		return "", errMissingBrace
	case '{', '}', ':':
		return "", errBadSubstitution
	}
	name := x.name()
	op, _ := x.next()
	switch op {
	case '}':
		v, ok := x.get(name, false)
		if !ok && x.lex.SkipUnset {
			return "${" + name + "}", nil
		}
		return v, nil
	case ':':
		op2, _ := x.next()
		switch op2 {
		case '-', '+', '?':
			return x.modifier(name, op2, true)
		case eof:
			return "", errMissingBrace
		}
		return "", fmt.Errorf("unsupported modifier (:%c) in substitution", op2)
	case '-', '+', '?':
		return x.modifier(name, op, false)
	case '#', '%':
		return x.trim(name, op)
	case '/':
		return x.replace(name)
	case eof:
		return "", errMissingBrace
	}
	return "", fmt.Errorf("unsupported modifier (%c) in substitution", op)
}

// word reads the word of a ${name<op>word} form up to its closing stop
// character.
func (x *lexer) word(stop rune, rawEscapes bool, missing error) (string, error) {
	w, _, err := x.processUntil(stop, rawEscapes)
	if err != nil {
		if x.peek() == eof {
			return "", missing
		}
		return "", err
	}
	return w, nil
}

// modifier handles ${name-word}, ${name+word}, ${name?word} and their
// ':' forms, where colon makes an empty value count as unset.
func (x *lexer) modifier(name string, op rune, colon bool) (string, error) {
	word, err := x.word('}', false, errMissingBrace)
	if err != nil {
		return "", err
	}
	value, set := x.get(name, true)
	if !set && x.lex.SkipUnset {
		c := ""
		if colon {
			c = ":"
		}
		return "${" + name + c + string(op) + word + "}", nil
	}
	unset := !set || (colon && value == "")
	switch op {
	case '-':
		if unset {
			return word, nil
		}
		return value, nil
	case '+':
		if unset {
			return "", nil
		}
		return word, nil
	default: // '?'
		if !set {
			if word == "" {
				word = "is not allowed to be unset"
			}
			return "", fmt.Errorf("%s: %s", name, word)
		}
		if unset {
			if word == "" {
				word = "is not allowed to be empty"
			}
			return "", fmt.Errorf("%s: %s", name, word)
		}
		return value, nil
	}
}

// trim handles ${name#pat}, ${name##pat}, ${name%pat} and ${name%%pat}.
func (x *lexer) trim(name string, op rune) (string, error) {
	opText := string(op)
	greedy := false
	if x.peek() == op {
		x.next()
		greedy = true
		opText += opText
	}
	pat, err := x.word('}', true, errMissingBrace)
	if err != nil {
		return "", err
	}
	value, set := x.get(name, false)
	if !set && x.lex.SkipUnset {
		return "${" + name + opText + pat + "}", nil
	}
	toks, err := parsePattern(pat, x.esc)
	if err != nil {
		return "", fmt.Errorf("invalid pattern (%s) in substitution: %w", pat, err)
	}
	if op == '#' {
		return trimPrefix(value, toks, greedy)
	}
	// A suffix search is a prefix search on the reversed value and pattern:
	// regular expressions find leftmost matches only.
	s, err := trimPrefix(reverse(value), reverseTokens(toks), greedy)
	if err != nil {
		return "", err
	}
	return reverse(s), nil
}

// replace handles ${name/pat/repl} and ${name//pat/repl}.
func (x *lexer) replace(name string) (string, error) {
	all := false
	if x.peek() == '/' {
		x.next()
		all = true
	}
	pat, err := x.word('/', true, errors.New("syntax error: missing '/' in ${}"))
	if err != nil {
		return "", err
	}
	repl, err := x.word('}', true, errMissingBrace)
	if err != nil {
		return "", err
	}
	value, set := x.get(name, false)
	if !set && x.lex.SkipUnset {
		sep := "/"
		if all {
			sep = "//"
		}
		return "${" + name + sep + pat + "/" + repl + "}", nil
	}
	toks, err := parsePattern(pat, x.esc)
	if err != nil {
		return "", fmt.Errorf("invalid pattern (%s) in substitution: %w", pat, err)
	}
	if len(toks) == 0 {
		// An empty pattern matches nothing (as in bash), rather than the
		// empty string between every character.
		return value, nil
	}
	re, err := compilePattern(toks, true, false)
	if err != nil {
		return "", fmt.Errorf("invalid pattern (%s) in substitution: %w", pat, err)
	}
	if all {
		return replaceAll(re, value, repl, x.limit)
	}
	if loc := re.FindStringIndex(value); loc != nil {
		return value[:loc[0]] + repl + value[loc[1]:], nil
	}
	return value, nil
}

// patTok is one element of a shell pattern: '*', '?' or a literal rune.
type patTok struct {
	kind byte // '*', '?' or 'l' for a literal
	lit  string
}

// parsePattern splits a pattern into tokens. The escape character makes
// the next '*', '?' or escape literal; before '}' or '/' (which needed
// escaping inside ${}) it is dropped; before anything else it is an error.
// There are no bracket expressions.
func parsePattern(pat string, esc rune) ([]patTok, error) {
	var toks []patTok
	for i := 0; i < len(pat); {
		r, n := utf8.DecodeRuneInString(pat[i:])
		switch {
		case r == '*' && len(toks) > 0 && toks[len(toks)-1].kind == '*':
			// "**" matches what "*" matches.
			i += n
			continue
		case r == '*' || r == '?':
			toks = append(toks, patTok{kind: byte(r)})
			i += n
			continue
		case r == esc:
			i += n
			if i >= len(pat) {
				return nil, fmt.Errorf("invalid escape '%c' at end of pattern", esc)
			}
			r2, n2 := utf8.DecodeRuneInString(pat[i:])
			switch r2 {
			case '*', '?', esc, '}', '/':
			default:
				return nil, fmt.Errorf("invalid escape '%c%c'", esc, r2)
			}
			r, n = r2, n2
		}
		toks = append(toks, patTok{kind: 'l', lit: pat[i : i+n]})
		i += n
	}
	return toks, nil
}

// compilePattern turns tokens into a regular expression: '*' is the
// shortest (or, greedy, the longest) run of any characters, '?' any one
// character, anchored at the start when anchored is set.
func compilePattern(toks []patTok, greedy, anchored bool) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("(?s)")
	if anchored {
		b.WriteString("^")
	}
	for _, t := range toks {
		switch t.kind {
		case '*':
			if greedy {
				b.WriteString(".*")
			} else {
				b.WriteString(".*?")
			}
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(t.lit))
		}
	}
	return regexp.Compile(b.String())
}

func trimPrefix(value string, toks []patTok, greedy bool) (string, error) {
	re, err := compilePattern(toks, greedy, true)
	if err != nil {
		return "", fmt.Errorf("invalid pattern in substitution: %w", err)
	}
	if loc := re.FindStringIndex(value); loc != nil {
		return value[loc[1]:], nil
	}
	return value, nil
}

func reverseTokens(toks []patTok) []patTok {
	out := make([]patTok, len(toks))
	for i, t := range toks {
		out[len(toks)-1-i] = t
	}
	return out
}

// reverse reverses s rune by rune, keeping invalid bytes as they are.
func reverse(s string) string {
	b := make([]byte, 0, len(s))
	for i := len(s); i > 0; {
		_, n := utf8.DecodeLastRuneInString(s[:i])
		b = append(b, s[i-n:i]...)
		i -= n
	}
	return string(b)
}
