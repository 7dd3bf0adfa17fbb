package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/client"
	"github.com/kiln-build/kiln/core/errdefs"
)

// exitCanceled is kiln run's exit code after Ctrl-C, as a shell's.
const exitCanceled = 130

type runFlags struct {
	rm          bool
	env         []string
	network     string
	workdir     string
	user        string
	entrypoint  string
	platform    string
	hostname    string
	interactive bool
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Run a command in a container from an image of kilnd's local store",
		Long: `Run IMAGE's command (its ENTRYPOINT and CMD, or COMMAND) in a new container
on kilnd, with the image's environment, working directory and user, and
print its output (stdout and stderr apart). kiln run exits with the
command's exit code (126 when it cannot be run, 127 when it is not found,
as docker run; 130 after Ctrl-C, which stops the container).

The container's filesystem is a fresh copy of the image's, discarded when
the command ends (--rm is always in effect). Options go before IMAGE;
everything after it is the command.`,
		Example: `  kiln run my-hello-app
  kiln run -e NAME=world --workdir /tmp busybox sh -c 'echo hello $NAME from $PWD'
  kiln run --network none --entrypoint /bin/ls busybox -l /`,
		Args: argsBetween(1, -1, "IMAGE [COMMAND] [ARG...]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd, f, args)
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVar(&f.rm, "rm", true, "remove the container when it exits (always the case)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (KEY=value, or KEY to pass kiln's own)")
	fl.StringVar(&f.network, "network", "default", `network: "default" (the host's, as in builds), "host" or "none"`)
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory in the container (absolute)")
	fl.StringVarP(&f.user, "user", "u", "", "user to run as (name, uid, name:group or uid:gid)")
	fl.StringVar(&f.entrypoint, "entrypoint", "", `replace the image's ENTRYPOINT ("" clears it)`)
	fl.StringVar(&f.platform, "platform", "", "platform of a multi-platform image (default: kilnd's)")
	fl.StringVar(&f.hostname, "hostname", "", "the container's host name")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "send kiln's standard input to the command")
	return cmd
}

func runRun(cmd *cobra.Command, f runFlags, args []string) error {
	req := &api.RunRequest{
		Image: args[0], Args: args[1:], Network: f.network, Workdir: f.workdir, User: f.user,
		Platform: f.platform, Stdin: f.interactive, Rm: f.rm, Hostname: f.hostname,
	}
	switch f.network {
	case "default", "host", "none":
	default:
		return fmt.Errorf("--network %q: want \"default\", \"host\" or \"none\"", f.network)
	}
	if f.workdir != "" && !strings.HasPrefix(f.workdir, "/") {
		return fmt.Errorf("--workdir %q: the working directory must be an absolute path", f.workdir)
	}
	if cmd.Flags().Changed("entrypoint") {
		req.HasEntrypoint = true
		if f.entrypoint != "" {
			req.Entrypoint = []string{f.entrypoint}
		}
	}
	for _, kv := range f.env {
		k, _, ok := strings.Cut(kv, "=")
		if k == "" || strings.ContainsAny(k, " \t\n") {
			return fmt.Errorf("-e %q: want KEY=value or KEY", kv)
		}
		if !ok {
			v, set := os.LookupEnv(k)
			if !set {
				continue // as docker run: an unset variable is left out
			}
			kv = k + "=" + v
		}
		req.Env = append(req.Env, kv)
	}

	c, err := newClient(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	code, err := c.Run(cmd.Context(), client.RunOptions{
		Request: req, Stdin: cmd.InOrStdin(),
		Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(),
	})
	var start *client.StartError
	switch {
	case errors.As(err, &start):
		fmt.Fprintf(cmd.ErrOrStderr(), "error: %s\n", start.Msg)
		return &exitError{code: start.Code}
	case err != nil:
		if cmd.Context().Err() != nil || errors.Is(err, errdefs.ErrCanceled) {
			return &exitError{code: exitCanceled}
		}
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}
