// Command kiln is the Kiln client: it talks to kilnd over its API.
//
// Each subcommand lives in its own file as newXxxCmd() and is registered in
// newRootCmd below; subcommands reach the daemon with newClient(cmd), which
// reads the global flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at link time: -ldflags "-X main.version=v0.1.0".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes kiln with args and returns the exit code. Errors print as
// "error: <message>", never with a stack or usage dump.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		if code, ok := exitCode(err); ok {
			return code // kiln run's container's code, or errors printed already
		}
		fmt.Fprintf(stderr, "error: %s\n", err)
		if debug, _ := root.PersistentFlags().GetBool("debug"); debug {
			for e := err; e != nil; e = errors.Unwrap(e) {
				fmt.Fprintf(stderr, "debug: %T: %v\n", e, e)
			}
		}
		return 1
	}
	return 0
}

func newRootCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:           "kiln",
		Short:         "kiln builds container images with kilnd",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := cmd.PersistentFlags()
	pf.String("addr", "", "kilnd address, unix:///path or tcp://host:port (default $KILN_HOST, else unix:///run/kiln/kilnd.sock)")
	pf.String("tlscacert", "", "CA certificate that signed kilnd's certificate (tcp:// only)")
	pf.String("tlscert", "", "client certificate for mutual TLS")
	pf.String("tlskey", "", "client key for mutual TLS")
	pf.Bool("debug", false, "print the chain of an error after its message")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})

	cmd.AddCommand(
		newInfoCmd(),
		newBuildCmd(),
		newDebugCmd(),
		newImagesCmd(),
		newImageCmd(),
		newRunCmd(),
		newDuCmd(),
		newPruneCmd(),
		newCacheCmd(),
		newHistoryCmd(),
	)
	return cmd
}
