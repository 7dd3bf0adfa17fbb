// Package shell expands Dockerfile words the way Docker does: quote
// removal, escapes and $VAR / ${VAR...} substitution against an explicit
// environment, optionally followed by word splitting.
//
// It is not a shell. There is no command substitution, arithmetic, globbing
// or tilde expansion, and the process environment is never read.
//
// # Vocabulary
//
//   - A word is the text of one Dockerfile argument as written, e.g.
//     `"$HOME"/bin` or `${VERSION:-1.0}`.
//   - Single-word mode (Result.Value) keeps all whitespace: it is what ENV,
//     LABEL, WORKDIR, COPY sources and similar fields use.
//   - Word-list mode (Result.Words) splits the result on unquoted
//     whitespace, including whitespace that an unquoted $VAR expanded to;
//     EXPOSE uses it. Empty words are never produced.
//   - Used lists every variable a word referenced; Undefined the subset
//     that was unset and had no default (`${X:-d}`, `${X+a}`, `${X?m}` are
//     deliberate, so they are not undefined). The converter needs Used so
//     that an ARG value enters a step's cache key only where it is used,
//     and Undefined for the "undefined variable" lint.
//
// # Example
//
//	lex := shell.Lex{}
//	r, err := lex.Process(`"$GREETING" ${NAME:-world}`, shell.Map{"GREETING": "hi  there"})
//	// r.Value == "hi  there world"
//	// r.Words == []string{"hi  there", "world"}
//	// r.Used == []string{"GREETING", "NAME"}, r.Undefined == nil
//
// # Limits
//
// Expansion may add at most MaxExpansion (1 MiB) to a word, and to the
// words of one instruction together (Expander). Past that, expansion stops
// before allocating more, with an error wrapping ErrExpansionTooLarge, so a
// few lines of chained ARGs cannot take the daemon's memory.
//
// The exact rules (and the conformance corpus they are tested against) are
// in frontend/dockerfile/testdata/conformance/README.md, section 3.
//
// This package imports only the standard library.
package shell
