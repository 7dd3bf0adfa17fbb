// Package instructions turns the parser's syntax nodes into typed
// commands, groups them into build stages, and checks every instruction's
// arguments and flags, so that a malformed Dockerfile fails before anything
// runs, with the file, the line and what is wrong:
//
//	Dockerfile:3: unknown instruction: COPPY (did you mean COPY?)
//	Dockerfile:5: COPY: unknown flag --chwon (did you mean --chown?); valid flags: --chmod, --chown, ...
//	Dockerfile:7: RUN --mount=type=cache,tagret=/x: unexpected key "tagret" in "tagret=/x" (did you mean target?)
//
// # Using it (the converter's view)
//
//	df, err := instructions.Parse(ctx, src, "Dockerfile")
//	// df.MetaArgs: ARGs before the first FROM; df.Stages: FROM + commands;
//	// df.Warnings: lint findings (check directive applied).
//	for _, st := range df.Stages {
//		from, err := st.From.Expand(metaArgExpander)   // base name, --platform
//		for _, cmd := range st.Commands {
//			ex := shell.NewExpander(shell.Lex{Escape: df.Directives.Escape}, envAtThisStep)
//			cmd, err := instructions.Expand(cmd, ex)
//			// ex.Used(): variables this step depends on (its cache key)
//			switch c := cmd.(type) {
//			case *instructions.RunCommand: ...
//			case *instructions.CopyCommand: ...
//			}
//		}
//	}
//
// Commands keep their words as written (quotes included) until Expand,
// which returns a new, expanded command and leaves the original alone, so a
// parsed file can be expanded once per target platform. Values that need
// expanding first (a --chmod or --mount option holding a variable) are
// checked by Expand; everything else is checked by Parse.
//
// Every command carries its Location: file, keyword as written, the
// original text (for image history's created_by) and its line range. Shell
// forms keep the command text exactly as written in CmdLine.Args[0];
// CmdLine.JSON tells the exec form.
//
// Errors are *errdefs.SourceError values in the invalid-argument class.
// Lint warnings (MaintainerDeprecated, JSONArgsRecommended,
// LegacyKeyValueFormat, StageNameCasing, FromAsCasing,
// ConsistentInstructionCasing, and the parser's NoEmptyContinuation) are
// parser.Warning values.
//
// This package imports the standard library, core/errdefs and the parser
// package; it does not expand words itself (see package shell).
package instructions
