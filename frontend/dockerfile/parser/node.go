package parser

import (
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/core/errdefs"
)

// Result is a parsed Dockerfile.
type Result struct {
	// Nodes are the instructions in file order.
	Nodes []*Node
	// Range spans from the first instruction's first line to the last
	// instruction's last line.
	Range errdefs.Range
	// Directives are the parser directives from the top of the file.
	Directives Directives
	// Warnings are problems that do not stop the parse (rule
	// NoEmptyContinuation).
	Warnings []Warning
}

// Directives are the parser directives: comment lines of the form
// "# name=value" at the very top of the file, before anything else.
type Directives struct {
	// Escape is the escape character, '\\' unless "# escape=`" was given.
	Escape rune
	// Syntax is the value of "# syntax=", "" if absent. It does not change
	// how Kiln parses the file.
	Syntax string
	// Check is the value of "# check=" (e.g. "skip=JSONArgsRecommended;
	// error=true"), "" if absent.
	Check string
	// Lines lists the directives given, in order, with their lines.
	Lines []DirectiveLine
}

// DirectiveLine records where one directive was given.
type DirectiveLine struct {
	Name  string // lower case: "escape", "syntax" or "check"
	Value string
	Line  int
}

// Warning is a problem found while parsing that does not make the file
// invalid.
type Warning struct {
	// Rule names the check, as BuildKit's lint rules do, e.g.
	// "NoEmptyContinuation"; a `# check=skip=Rule` directive silences it.
	Rule    string
	Message string
	Range   errdefs.Range
}

// Node is one instruction: one logical line of the Dockerfile, plus the
// heredoc bodies it introduced.
//
// Args depend on the instruction (see the package documentation): for the
// shell form of RUN, CMD, ENTRYPOINT and SHELL it is one string, the command
// exactly as written; for their JSON (exec) form each array element, with
// JSON set; for ENV and LABEL it is a flat list of triples (key, value,
// separator) where the separator is "=" for key=value and "" for the
// legacy "key value" form.
type Node struct {
	// Keyword is the instruction name exactly as written ("RUN", "run").
	Keyword string
	// Flags are the "--name=value" words after the keyword, quotes and
	// escapes removed, in order.
	Flags []string
	// Args are the arguments; see the type documentation.
	Args []string
	// Sub is the trigger instruction of ONBUILD, nil for others.
	Sub *Node
	// JSON is set when the arguments were written as a JSON array.
	JSON bool
	// ArgsText is the text after the keyword and flags, trimmed, as written
	// (continuation lines joined, no expansion).
	ArgsText string
	// Original is the whole logical line as written, trimmed, with its
	// continuation lines joined; heredoc bodies are not part of it.
	Original string
	// Heredocs are the heredocs the line introduced, in order, with their
	// bodies. Only RUN, COPY and ADD in shell form (directly or as an
	// ONBUILD trigger) have them.
	Heredocs []Heredoc
	// Comments are the comment lines directly before the instruction,
	// without '#' and surrounding whitespace; an empty "#" line resets them.
	Comments []string
	// Range covers every physical line the instruction consumed, including
	// comment and blank lines inside a continuation and heredoc bodies.
	Range errdefs.Range
}

// Name returns the lower-cased keyword ("run"), the form instructions are
// matched by.
func (n *Node) Name() string { return strings.ToLower(n.Keyword) }

// Dump writes the instructions in the conformance dump format, one
// "(keyword ...)" per line with no final newline: the format of BuildKit's
// parser test results and of `kiln debug parse`.
func (r *Result) Dump() string {
	var b strings.Builder
	for i, n := range r.Nodes {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteByte('(')
		n.dump(&b)
		b.WriteByte(')')
	}
	return b.String()
}

// Dump returns the node in the conformance dump format, without the
// surrounding parentheses of a top-level line.
func (n *Node) Dump() string {
	var b strings.Builder
	n.dump(&b)
	return b.String()
}

func (n *Node) dump(b *strings.Builder) {
	b.WriteString(strings.ToLower(n.Keyword))
	if len(n.Flags) > 0 {
		b.WriteString(" [")
		for i, f := range n.Flags {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Quote(f))
		}
		b.WriteByte(']')
	}
	if n.Sub != nil {
		b.WriteString(" (")
		n.Sub.dump(b)
		b.WriteByte(')')
	}
	for _, a := range n.Args {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(a))
	}
}

// Heredoc is one here-document: `<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`.
type Heredoc struct {
	// Name is the delimiter word with quotes removed ("EOF").
	Name string
	// FileDescriptor is the number written before "<<" (3 in "3<<EOF"),
	// 0 (stdin) when there is none.
	FileDescriptor int
	// Content is the body as written: every line up to the delimiter line,
	// each ending in "\n" (CRLF line ends become "\n"). Leading tabs are
	// kept even when Chomp is set; use Body for the content to use.
	Content string
	// Expand is false when any part of the delimiter was quoted
	// (<<"EOF", <<'EOF'): the body must then be used literally.
	Expand bool
	// Chomp is set for "<<-": leading tabs are stripped from the body's
	// lines (and were ignored when looking for the delimiter).
	Chomp bool
}

// Body returns the content to use: Content, with leading tabs removed
// from every line when Chomp is set.
func (h Heredoc) Body() string {
	if !h.Chomp {
		return h.Content
	}
	return ChompHeredocContent(h.Content)
}

// ChompHeredocContent removes leading tabs from every line of s.
func ChompHeredocContent(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "")
}
