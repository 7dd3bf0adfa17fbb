package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
	"github.com/kiln-build/kiln/frontend/dockerfile/parser"
)

// newDebugCmd is "kiln debug": tools that show how Kiln reads a build,
// run locally without a daemon. Its subcommands come from
// debugSubcommands.
func newDebugCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "debug",
		Short: "Show how Kiln reads a build (runs locally, no daemon needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(debugSubcommands()...)
	return cmd
}

// debugSubcommands lists the subcommands of "kiln debug"; a new one is a
// newDebugXxxCmd function added here.
func debugSubcommands() []*cobra.Command {
	return []*cobra.Command{
		newDebugParseCmd(),
	}
}

func newDebugParseCmd() *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "parse FILE",
		Short: "Print a Dockerfile's syntax tree",
		Long: `Print the syntax tree of a Dockerfile, one "(instruction ...)" per line,
in the format of BuildKit's parser tests. FILE "-" reads standard input.

A file the parser rejects prints "error: FILE:LINE: what is wrong" and exits 1.
With --check, the instructions are also checked (names, arguments, flags,
stages) and lint warnings are printed to standard error.`,
		Example: `  kiln debug parse Dockerfile
  kiln debug parse --check - < Dockerfile`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, name, err := readDockerfile(cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			res, err := parser.Parse(src, name)
			if err != nil {
				return err
			}
			if check {
				df, err := instructions.Parse(src, name)
				if err != nil {
					return err
				}
				for _, w := range df.Warnings {
					if _, err := fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s:%d: %s: %s\n", name, w.Range.Start, w.Rule, w.Message); err != nil {
						return err
					}
				}
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), res.Dump())
			return err
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "also check the instructions and print lint warnings")
	return cmd
}

// readDockerfile reads path ("-" for stdin) and returns its content and the
// name to use in messages.
func readDockerfile(stdin io.Reader, path string) ([]byte, string, error) {
	if path == "-" {
		src, err := io.ReadAll(stdin)
		if err != nil {
			return nil, "", fmt.Errorf("read standard input: %w", err)
		}
		return src, "<stdin>", nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read Dockerfile: %w", err)
	}
	return src, path, nil
}
