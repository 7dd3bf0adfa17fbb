package parser

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// isBlank reports whether r separates the keyword from the rest and the
// words of the whitespace-split argument forms.
func isBlank(r rune) bool {
	switch r {
	case ' ', '\t', '\v', '\f', '\r':
		return true
	}
	return false
}

// cutBlank splits s at its first run of blanks.
func cutBlank(s string) (string, string, bool) {
	i := strings.IndexFunc(s, isBlank)
	if i < 0 {
		return s, "", false
	}
	return s[:i], strings.TrimLeftFunc(s[i:], isBlank), true
}

// ErrNotStringArray is the error for a JSON array with a non-string
// element, e.g. CMD ["a", 1].
var ErrNotStringArray = errors.New("when using JSON array syntax, arrays must be comprised of strings only")

// parseLine turns one logical line into a node. It never expands
// variables and does not check instruction names, argument counts or flags:
// that is the instructions package's job.
func parseLine(line string, esc rune) (*Node, error) {
	keyword, flags, rest, err := splitCommand(line, esc)
	if err != nil {
		return nil, err
	}
	n := &Node{Keyword: keyword, Flags: flags, ArgsText: rest, Original: strings.TrimSpace(line)}
	switch strings.ToLower(keyword) {
	case "run", "cmd", "entrypoint", "shell":
		n.Args, n.JSON, err = parseJSONOrRaw(rest)
	case "add", "copy", "volume":
		n.Args, n.JSON, err = parseJSONOrList(rest)
	case "from", "expose":
		n.Args = splitWhitespace(rest)
	case "maintainer", "stopsignal", "user", "workdir":
		if rest != "" {
			n.Args = []string{rest}
		}
	case "arg":
		n.Args = splitWords(rest, esc)
	case "env", "label":
		n.Args, err = parseNameValues(rest, strings.ToUpper(keyword), esc)
	case "healthcheck":
		n.Args, n.JSON, err = parseHealthcheck(rest)
	case "onbuild":
		if rest != "" {
			n.Sub, err = parseLine(rest, esc)
		}
	default:
		// Unknown instructions are reported by the instructions package;
		// at this level they carry one empty argument.
		n.Args = []string{""}
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

// splitCommand splits a logical line into its keyword, its flags and the
// rest (trimmed).
func splitCommand(line string, esc rune) (string, []string, string, error) {
	keyword, args, ok := cutBlank(strings.TrimSpace(line))
	if !ok {
		return keyword, nil, "", nil
	}
	flags, rest := extractFlags(args, esc)
	return keyword, flags, strings.TrimSpace(rest), nil
}

// extractFlags takes the "--name=value" words from the start of s. Quotes
// group (and are removed), the escape character makes the next character
// literal (and is removed), and a lone "--" ends the flags. It returns the
// flags and the text after them.
func extractFlags(s string, esc rune) ([]string, string) {
	var flags []string
	pos := 0
	for {
		for pos < len(s) {
			r, n := utf8.DecodeRuneInString(s[pos:])
			if !unicode.IsSpace(r) {
				break
			}
			pos += n
		}
		if !strings.HasPrefix(s[pos:], "--") {
			return flags, s[pos:]
		}
		word, end := readFlagWord(s, pos, esc)
		pos = end
		if word == "--" {
			return flags, s[pos:]
		}
		flags = append(flags, word)
	}
}

// readFlagWord reads one flag word starting at pos and returns it with the
// position after it.
func readFlagWord(s string, pos int, esc rune) (string, int) {
	var b strings.Builder
	var quote rune
	for pos < len(s) {
		r, n := utf8.DecodeRuneInString(s[pos:])
		raw := s[pos : pos+n]
		pos += n
		switch {
		case quote != 0 && r == quote:
			quote = 0
			continue
		case quote == 0 && unicode.IsSpace(r):
			return b.String(), pos - n
		case quote == 0 && (r == '\'' || r == '"'):
			quote = r
			continue
		case r == esc:
			if pos >= len(s) {
				continue // an escape at the very end is dropped
			}
			_, n = utf8.DecodeRuneInString(s[pos:])
			raw = s[pos : pos+n]
			pos += n
		}
		b.WriteString(raw)
	}
	return b.String(), pos
}

// splitWhitespace splits s on runs of blanks; "" gives no words.
func splitWhitespace(s string) []string {
	return strings.FieldsFunc(s, isBlank)
}

// parseJSON parses s as a JSON array of strings. ok is false if s is not a
// JSON array; err is ErrNotStringArray for an array with other elements.
func parseJSON(s string) (args []string, ok bool, err error) {
	if !strings.HasPrefix(strings.TrimLeftFunc(s, unicode.IsSpace), "[") {
		return nil, false, nil
	}
	var raw []json.RawMessage
	if json.Unmarshal([]byte(s), &raw) != nil {
		return nil, false, nil
	}
	args = make([]string, 0, len(raw))
	for _, r := range raw {
		var str string
		if len(r) == 0 || r[0] != '"' || json.Unmarshal(r, &str) != nil {
			return nil, false, ErrNotStringArray
		}
		args = append(args, str)
	}
	return args, true, nil
}

// parseJSONOrRaw is the argument form of RUN, CMD, ENTRYPOINT and SHELL: a
// JSON array of strings, or else the whole text as one argument.
func parseJSONOrRaw(s string) ([]string, bool, error) {
	if s == "" {
		return nil, false, nil
	}
	args, ok, err := parseJSON(s)
	if err != nil || ok {
		return args, ok, err
	}
	return []string{s}, false, nil
}

// parseJSONOrList is the argument form of ADD, COPY and VOLUME: a JSON
// array of strings, or else the text split on blanks.
func parseJSONOrList(s string) ([]string, bool, error) {
	args, ok, err := parseJSON(s)
	if err != nil || ok {
		return args, ok, err
	}
	return splitWhitespace(s), false, nil
}

// parseHealthcheck splits HEALTHCHECK's type word (CMD, NONE, ...) from the
// command, which is JSON-or-raw.
func parseHealthcheck(s string) ([]string, bool, error) {
	if s == "" {
		return nil, false, nil
	}
	typ, rest := s, ""
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		typ, rest = s[:i], strings.TrimLeftFunc(s[i:], unicode.IsSpace)
	}
	cmd, isJSON, err := parseJSONOrRaw(rest)
	if err != nil {
		return nil, false, err
	}
	return append([]string{typ}, cmd...), isJSON, nil
}

// parseNameValues is the argument form of ENV and LABEL: (key, value,
// separator) triples for "k=v k2=v2", or one triple with separator "" for
// the legacy "k v" form, where v is the rest of the text.
func parseNameValues(s, keyword string, esc rune) ([]string, error) {
	words := splitWords(s, esc)
	if len(words) == 0 {
		return nil, nil
	}
	if !strings.Contains(words[0], "=") {
		key, value, ok := cutBlank(s)
		if !ok {
			return nil, fmt.Errorf("%s must have two arguments", keyword)
		}
		return []string{key, value, ""}, nil
	}
	args := make([]string, 0, 3*len(words))
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return nil, fmt.Errorf("syntax error - can't find = in %q. Must be of the form: name=value", w)
		}
		args = append(args, k, v, "=")
	}
	return args, nil
}

// splitWords splits ARG, ENV and LABEL arguments into words on unquoted
// whitespace, keeping quotes and escapes in the words.
func splitWords(s string, esc rune) []string {
	var words []string
	var b strings.Builder
	inWord := false
	var quote rune
	for pos := 0; pos < len(s); {
		r, n := utf8.DecodeRuneInString(s[pos:])
		raw := s[pos : pos+n]
		pos += n
		if !inWord {
			if unicode.IsSpace(r) {
				continue
			}
			inWord = true
		}
		if quote == 0 && unicode.IsSpace(r) {
			words = append(words, b.String())
			b.Reset()
			inWord = false
			continue
		}
		if r == esc && quote != '\'' {
			if pos >= len(s) {
				continue // an escape at the very end is dropped
			}
			_, n2 := utf8.DecodeRuneInString(s[pos:])
			b.WriteString(raw)
			raw = s[pos : pos+n2]
			pos += n2
			b.WriteString(raw)
			continue
		}
		switch {
		case quote == 0 && (r == '\'' || r == '"'):
			quote = r
		case quote != 0 && r == quote:
			quote = 0
		}
		b.WriteString(raw)
	}
	if b.Len() > 0 {
		words = append(words, b.String())
	}
	return words
}
