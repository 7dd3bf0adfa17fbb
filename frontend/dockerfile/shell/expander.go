package shell

import "fmt"

// Expander expands the words of one instruction against one environment
// and remembers which variables they used. It satisfies the Expander
// interface of the instructions package:
//
//	ex := shell.NewExpander(shell.Lex{Escape: df.Directives.Escape}, env)
//	cmd, err := copyCmd.Expand(ex)
//	// ex.Used(): the variables the instruction depends on (for its cache key)
//	// ex.Undefined(): references to unset variables (for the lint)
//
// An Expander is not safe for concurrent use.
type Expander struct {
	lex       Lex
	env       Env
	used      []string
	undefined []string
	seen      map[string]bool // names in used; "!"+name for undefined
	grown     int             // bytes expansion added to the words so far
}

// NewExpander returns an Expander using lex's escape character and options
// for words and env (nil means empty) for every lookup.
func NewExpander(lex Lex, env Env) *Expander {
	return &Expander{lex: lex, env: env}
}

// ExpandWord expands word in single-word mode.
func (e *Expander) ExpandWord(word string) (string, error) {
	r, err := e.process(e.lex, word)
	return r.Value, err
}

// ExpandWords expands word in word-list mode.
func (e *Expander) ExpandWords(word string) ([]string, error) {
	r, err := e.process(e.lex, word)
	return r.Words, err
}

// ExpandHeredoc expands the body of a heredoc whose delimiter was not
// quoted: $ references are replaced, quotes are left alone, and the escape
// character quotes only `$`, '`' and itself.
func (e *Expander) ExpandHeredoc(body string) (string, error) {
	lex := e.lex
	lex.SkipQuotes = true
	lex.RawQuotes = false
	lex.RawEscapes = false
	r, err := e.process(lex, body)
	return r.Value, err
}

func (e *Expander) process(lex Lex, word string) (Result, error) {
	r, err := lex.Process(word, e.env)
	if err != nil {
		return r, err
	}
	if err := e.Grow(len(r.Value) - len(word)); err != nil {
		return Result{}, err
	}
	if e.seen == nil {
		e.seen = map[string]bool{}
	}
	for _, n := range r.Used {
		if !e.seen[n] {
			e.seen[n] = true
			e.used = append(e.used, n)
		}
	}
	for _, n := range r.Undefined {
		if !e.seen["!"+n] {
			e.seen["!"+n] = true
			e.undefined = append(e.undefined, n)
		}
	}
	return r, nil
}

// Grow adds n bytes (if positive) to what expansion has added to the
// instruction's words, and fails once that passes MaxExpansion. Callers
// that expand an instruction's words with Lex directly report the growth
// here.
func (e *Expander) Grow(n int) error {
	if n <= 0 {
		return nil
	}
	e.grown += n
	if e.grown > MaxExpansion {
		return fmt.Errorf("%w: variables add more than 1 MiB (%d bytes) to this instruction, the limit per instruction", ErrExpansionTooLarge, MaxExpansion)
	}
	return nil
}

// Used returns the variables referenced so far, in order of first use.
func (e *Expander) Used() []string { return append([]string(nil), e.used...) }

// Undefined returns the unset variables referenced so far without a
// default, in order of first use.
func (e *Expander) Undefined() []string { return append([]string(nil), e.undefined...) }
