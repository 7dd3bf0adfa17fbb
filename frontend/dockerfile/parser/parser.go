package parser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/kiln-build/kiln/core/errdefs"
)

// MaxLineSize is the longest line accepted, in bytes: a physical line, and
// an instruction's continuation lines once joined (which bounds the memory
// and time one instruction can take; a longer script belongs in a heredoc
// or a file).
const MaxLineSize = 65535

// ctxCheckLines is how many lines the parser reads between two looks at
// its context.
const ctxCheckLines = 4096

// utf8BOM is the byte-order mark dropped from the start of a file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Parse parses a Dockerfile. name is used only in error messages
// ("Dockerfile:3: ..."). Errors are *errdefs.SourceError values in the
// invalid-argument class, naming the lines of the offending instruction,
// or the cause of ctx's cancellation. The time it takes is linear in the
// size of src.
func Parse(ctx context.Context, src []byte, name string) (*Result, error) {
	p := &parser{
		ctx:   ctx,
		name:  name,
		lines: splitLines(bytes.TrimPrefix(src, utf8BOM)),
		res:   &Result{Directives: Directives{Escape: '\\'}},
	}
	if err := p.parse(); err != nil {
		return nil, err
	}
	return p.res, nil
}

// parser is the state of one Parse call.
type parser struct {
	ctx      context.Context
	name     string
	lines    []string // physical lines, line ends removed
	i        int      // index of the next line to read
	res      *Result
	comments []string
	inTop    bool // still in the leading block where directives count
}

// splitLines splits src after each "\n" and removes all trailing "\r" and
// "\n" characters from every line.
func splitLines(src []byte) []string {
	if len(src) == 0 {
		return nil
	}
	s := string(src)
	s = strings.TrimSuffix(s, "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, "\r\n")
	}
	return lines
}

// errorAt returns a SourceError for lines start..end.
func (p *parser) errorAt(start, end int, err error) error {
	return &errdefs.SourceError{
		File:  p.name,
		Range: errdefs.Range{Start: start, End: end},
		Err:   errdefs.WithClass(errdefs.ErrInvalidArgument, err),
	}
}

// next returns the next physical line and its 1-based number.
func (p *parser) next() (string, int, error) {
	if p.i%ctxCheckLines == 0 && p.ctx.Err() != nil {
		return "", p.i, fmt.Errorf("parse %s: %w", p.name, context.Cause(p.ctx))
	}
	l := p.lines[p.i]
	p.i++
	if len(l) > MaxLineSize {
		return "", p.i, p.errorAt(p.i, p.i, fmt.Errorf("dockerfile line greater than max allowed size of %d", MaxLineSize))
	}
	return l, p.i, nil
}

func (p *parser) parse() error {
	p.inTop = true
	for p.i < len(p.lines) {
		line, n, err := p.next()
		if err != nil {
			return err
		}
		if p.inTop {
			ok, err := p.directive(line, n)
			if err != nil {
				return err
			}
			if ok {
				p.comment(line)
				continue
			}
			p.inTop = false
		}
		if isComment(line) {
			p.comment(line)
			continue
		}
		text := strings.TrimLeftFunc(line, unicode.IsSpace)
		if text == "" {
			continue
		}
		if err := p.instruction(text, n); err != nil {
			return err
		}
	}
	if len(p.res.Nodes) == 0 {
		return p.errorAt(0, 0, errors.New("file with no instructions"))
	}
	p.res.Range = errdefs.Range{Start: p.res.Nodes[0].Range.Start, End: p.res.Nodes[len(p.res.Nodes)-1].Range.End}
	return nil
}

// comment records a comment line for the next instruction's Comments.
func (p *parser) comment(line string) {
	text := strings.TrimSpace(strings.TrimLeftFunc(line, unicode.IsSpace)[1:])
	if text == "" {
		p.comments = nil
		return
	}
	p.comments = append(p.comments, text)
}

// isComment reports whether the line's first non-blank character is '#'.
func isComment(line string) bool {
	return strings.HasPrefix(strings.TrimLeftFunc(line, unicode.IsSpace), "#")
}

var reDirective = regexp.MustCompile(`^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$`)

// directive handles a line of the leading block; it reports whether the
// line was a known directive.
func (p *parser) directive(line string, n int) (bool, error) {
	m := reDirective.FindStringSubmatch(strings.TrimLeftFunc(line, unicode.IsSpace))
	if m == nil {
		return false, nil
	}
	name, value := strings.ToLower(m[1]), m[2]
	d := &p.res.Directives
	switch name {
	case "escape", "syntax", "check":
	default:
		return false, nil
	}
	for _, prev := range d.Lines {
		if prev.Name == name {
			return false, p.errorAt(n, n, fmt.Errorf("only one %s parser directive can be used (already set on line %d)", name, prev.Line))
		}
	}
	switch name {
	case "escape":
		if value != "\\" && value != "`" {
			return false, p.errorAt(n, n, fmt.Errorf("invalid escape token %q: it must be ` or \\", value))
		}
		d.Escape = rune(value[0])
	case "syntax":
		d.Syntax = value
	case "check":
		d.Check = value
	}
	d.Lines = append(d.Lines, DirectiveLine{Name: name, Value: value, Line: n})
	return true, nil
}

// trimContinuation reports whether line continues onto the next one and
// returns it without the escape character (and the blanks after it) if so.
// A line continues when it ends with the escape character, possibly
// followed by spaces or tabs, unless that escape is itself escaped.
func trimContinuation(line string, esc rune) (string, bool) {
	t := strings.TrimRight(line, " \t")
	e := string(esc)
	if !strings.HasSuffix(t, e) {
		return line, false
	}
	body := t[:len(t)-len(e)]
	if strings.HasSuffix(body, e) {
		return line, false
	}
	return body, true
}

// instruction reads one instruction starting with first, the text of line
// start without its leading whitespace, plus its continuation lines and
// heredoc bodies.
func (p *parser) instruction(first string, start int) error {
	esc := p.res.Directives.Escape
	body, cont := trimContinuation(first, esc)
	var joined strings.Builder
	joined.WriteString(body)
	emptyContinuation := false
	for cont && p.i < len(p.lines) {
		l, _, err := p.next()
		if err != nil {
			return err
		}
		if isComment(l) {
			continue
		}
		if strings.TrimSpace(l) == "" {
			emptyContinuation = true
			continue
		}
		body, cont = trimContinuation(l, esc)
		if joined.Len()+len(body) > MaxLineSize {
			return p.errorAt(start, p.i, fmt.Errorf("instruction greater than max allowed size of %d bytes after joining its continuation lines", MaxLineSize))
		}
		joined.WriteString(body)
	}
	line := joined.String()
	end := p.i
	comments := p.comments
	p.comments = nil
	if strings.TrimSpace(line) == "" {
		// Only escape characters: nothing to do.
		return nil
	}

	node, err := parseLine(line, esc)
	if err != nil {
		return p.errorAt(start, end, err)
	}
	node.Comments = comments
	if canHaveHeredocs(node) && strings.Contains(line, "<<") {
		if err := p.heredocs(node, line, esc); err != nil {
			return p.errorAt(start, p.i, err)
		}
	}
	node.Range = errdefs.Range{Start: start, End: p.i}
	if emptyContinuation {
		p.res.Warnings = append(p.res.Warnings, Warning{
			Rule:    "NoEmptyContinuation",
			Message: "Empty continuation line found in: " + node.Original,
			Range:   node.Range,
		})
	}
	p.res.Nodes = append(p.res.Nodes, node)
	return nil
}

// heredocs finds the heredoc markers of line and reads their bodies.
func (p *parser) heredocs(node *Node, line string, esc rune) error {
	docs, err := heredocsFromLine(line, esc)
	if err != nil {
		return err
	}
	for _, h := range docs {
		var body strings.Builder
		terminated := false
		for p.i < len(p.lines) {
			l, _, err := p.next()
			if err != nil {
				return err
			}
			candidate := l
			if h.Chomp {
				candidate = strings.TrimLeft(candidate, "\t")
			}
			if candidate == h.Name {
				terminated = true
				break
			}
			body.WriteString(l)
			body.WriteByte('\n')
		}
		if !terminated {
			return fmt.Errorf("unterminated heredoc %s: no line %q before the end of the file", h.Name, h.Name)
		}
		h.Content = body.String()
		node.Heredocs = append(node.Heredocs, h)
	}
	return nil
}
