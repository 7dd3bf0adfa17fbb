package parser

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/kiln-build/kiln/frontend/dockerfile/shell"
)

// canHaveHeredocs reports whether n may introduce heredocs: RUN, COPY and
// ADD in shell form, directly or as the trigger of ONBUILD.
func canHaveHeredocs(n *Node) bool {
	if n.Name() == "onbuild" && n.Sub != nil {
		n = n.Sub
	}
	switch n.Name() {
	case "run", "copy", "add":
		return !n.JSON
	}
	return false
}

// heredocsFromLine returns the heredocs a logical line introduces, in
// order, without their bodies. A heredoc marker is a whole word (quotes
// and escapes kept) of the form [n]<<[-]WORD.
func heredocsFromLine(line string, esc rune) ([]Heredoc, error) {
	lex := shell.Lex{Escape: esc, RawQuotes: true, RawEscapes: true, SkipUnset: true}
	words, err := lex.ProcessWords(line, nil)
	if err != nil {
		// A line that does not lex (an open quote) has no heredocs; the
		// shell will report its own error when it runs.
		return nil, nil
	}
	var docs []Heredoc
	for _, w := range words {
		h, err := parseHeredoc(w, esc)
		if err != nil {
			return nil, err
		}
		if h != nil {
			docs = append(docs, *h)
		}
	}
	return docs, nil
}

// ParseHeredoc reports whether word (as written, quotes kept) is a heredoc
// marker such as "<<EOF", "<<-'EOF'" or "3<<EOF", and returns the heredoc
// it introduces (without a body) or nil. esc is the file's escape
// character (0 means '\\'). The instructions package uses it to tell
// heredoc sources of COPY and ADD from paths.
func ParseHeredoc(word string, esc rune) *Heredoc {
	if esc == 0 {
		esc = '\\'
	}
	h, err := parseHeredoc(word, esc)
	if err != nil {
		return nil
	}
	return h
}

func parseHeredoc(word string, esc rune) (*Heredoc, error) {
	digits := strings.IndexFunc(word, func(r rune) bool { return r < '0' || r > '9' })
	if digits < 0 || !strings.HasPrefix(word[digits:], "<<") {
		return nil, nil
	}
	h := &Heredoc{}
	if digits > 0 {
		fd, err := strconv.Atoi(word[:digits])
		if err != nil {
			return nil, fmt.Errorf("invalid file descriptor %q in heredoc %q", word[:digits], word)
		}
		h.FileDescriptor = fd
	}
	rest := word[digits+2:]
	if r, ok := strings.CutPrefix(rest, "-"); ok {
		h.Chomp = true
		rest = r
	}
	rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
	if rest == "" || strings.Contains(rest, "<") {
		return nil, nil
	}
	// The delimiter with quotes removed must be one word. If removing
	// quotes and escapes changed it, part of it was quoted (<<"EOF",
	// <<'EOF', <<\\EOF as in POSIX sh): the body is then used literally.
	lex := shell.Lex{Escape: esc, SkipUnset: true}
	plain, err := lex.ProcessWords(rest, nil)
	if err != nil || len(plain) != 1 {
		return nil, nil
	}
	lex.RawQuotes, lex.RawEscapes = true, true
	raw, err := lex.ProcessWords(rest, nil)
	if err != nil || len(raw) != 1 {
		return nil, nil
	}
	h.Name = plain[0]
	h.Expand = plain[0] == raw[0]
	return h, nil
}
