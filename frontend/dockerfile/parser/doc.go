// Package parser turns Dockerfile text into a list of instruction nodes
// with their source lines. It is the syntax level only: it joins
// continuation lines, reads parser directives and heredoc bodies, extracts
// flags and splits arguments, but it never expands variables and does not
// check instruction names, argument counts or flag names (package
// instructions does).
//
// # What Parse handles
//
//   - Line continuation with the escape character; blank and comment lines
//     inside a continuation are skipped (a blank one gives a
//     NoEmptyContinuation warning).
//   - Parser directives at the very top: "# escape=\" or "# escape=`",
//     "# syntax=...", "# check=...".
//   - CRLF line ends, a UTF-8 byte-order mark, case-insensitive keywords.
//   - JSON (exec) and shell forms; "--name=value" flags on every
//     instruction (quotes and escapes removed; "--" ends them).
//   - Heredocs for RUN, COPY and ADD in shell form: "<<EOF", "<<-EOF",
//     quoted delimiters, "3<<EOF", several on one line.
//
// # Arguments per instruction
//
//	RUN CMD ENTRYPOINT SHELL  JSON array (JSON set) or the text as one arg
//	ADD COPY VOLUME           JSON array or the text split on blanks
//	FROM EXPOSE               the text split on blanks
//	MAINTAINER STOPSIGNAL USER WORKDIR   the text as one arg
//	ARG                       words (quotes and escapes kept)
//	ENV LABEL                 (key, value, "=") per key=value word, or
//	                          (key, rest, "") for the legacy "key value" form
//	HEALTHCHECK               the type word (CMD, NONE), then JSON-or-raw
//	ONBUILD                   no args; the trigger line is parsed into Sub
//	anything else             one empty argument
//
// The exact rules, and the BuildKit corpus they are tested against byte for
// byte, are in frontend/dockerfile/testdata/conformance/README.md.
//
// # Example
//
//	res, err := parser.Parse(ctx, []byte("FROM busybox\nRUN echo hi\n"), "Dockerfile")
//	// res.Nodes[1].Keyword == "RUN", .Args == []string{"echo hi"},
//	// .Range == errdefs.Range{Start: 2, End: 2}
//	// res.Dump() == "(from \"busybox\")\n(run \"echo hi\")"
//
// Errors are *errdefs.SourceError values ("Dockerfile:3: ...") in the
// errdefs.ErrInvalidArgument class.
//
// This package imports only the standard library, core/errdefs and the
// shell package (for heredoc markers), all of which are standard-library
// only.
package parser
