package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/client"
)

// newHistoryCmd is "kiln history" and its subcommands, after docker
// buildx history.
func newHistoryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Inspect kilnd's past builds",
		Long: `List kilnd's finished builds and look into one: each step's time and cache
status, and the logs of its steps (of a failed step first of all).

kilnd keeps the newest 200 builds. A build is named by its ID (kiln history
ls), a prefix of it only one build has, or nothing: the newest build.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newHistoryLsCmd(), newHistoryInspectCmd(), newHistoryLogsCmd())
	return cmd
}

func newHistoryLsCmd() *cobra.Command {
	var (
		format string
		limit  int
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List kilnd's finished builds, newest first",
		Long: `List kilnd's finished builds, newest first, as docker buildx history ls
does: ID, Dockerfile (and target), status (Completed, Error, Canceled),
when it started and how long it took.

--format json prints one JSON object per build and line.`,
		Args: argsBetween(0, 0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return fmt.Errorf("--limit %d: want 0 (all) or more", limit)
			}
			if format != "" && format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json", format)
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			recs, err := c.History(cmd.Context(), client.HistoryOptions{Limit: limit})
			if err != nil {
				return err
			}
			return printHistory(cmd.OutOrStdout(), recs, format, time.Now())
		},
	}
	cmd.Flags().StringVar(&format, "format", "", `output format: "table" (default) or "json"`)
	cmd.Flags().IntVarP(&limit, "limit", "n", 0, "list only the newest N builds (0: all)")
	return cmd
}

func newHistoryInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect [BUILD]",
		Short: "Show one build: its outcome and each step's time and cache status",
		Long: `Show one build as docker buildx history inspect does (Dockerfile, target,
status, start, duration, steps and how many were cached, the image, the
error), followed by its steps: number, name, DONE, CACHED or ERROR, and
how long each ran. The numbers are what kiln history logs --step takes.`,
		Args: argsBetween(0, 1, "BUILD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := historyRecord(cmd, args)
			if err != nil {
				return err
			}
			return printBuildInspect(cmd.OutOrStdout(), rec, filepath.Base(os.Args[0]))
		},
	}
}

func newHistoryLogsCmd() *cobra.Command {
	var step string
	cmd := &cobra.Command{
		Use:   "logs [BUILD]",
		Short: "Print a build's logs, or one step's",
		Long: `Print a build's logs as kiln build --progress plain printed them (and as
docker buildx history logs does): every step with its output and its
outcome. --step prints one step only: its number in kiln history inspect
(3 or #3) or its name, or a part of it only one step's name has
("RUN make").

kilnd keeps each step's last 32 KiB of output (256 KiB per build, failed
steps first); secrets the build used are shown as ****.`,
		Args: argsBetween(0, 1, "BUILD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := historyRecord(cmd, args)
			if err != nil {
				return err
			}
			only := -1
			if step != "" {
				if only, err = selectStep(rec.GetTrace(), step); err != nil {
					return err
				}
			}
			return printLogs(cmd.OutOrStdout(), rec.GetTrace(), only)
		},
	}
	cmd.Flags().StringVar(&step, "step", "", "print only this step: its number (kiln history inspect) or name")
	return cmd
}

// historyRecord fetches, with its steps, the build args name: its ref, a
// unique prefix of one, or the newest build when args is empty.
func historyRecord(cmd *cobra.Command, args []string) (*api.BuildRecord, error) {
	c, err := newClient(cmd)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx := cmd.Context()
	ref := ""
	if len(args) > 0 {
		ref = args[0]
	}
	// A full ref, or the newest build, takes one request.
	recs, err := c.History(ctx, client.HistoryOptions{Ref: ref, Limit: 1, Trace: true})
	if err != nil {
		return nil, err
	}
	if len(recs) == 1 {
		return recs[0], nil
	}
	full, err := resolveBuildRef(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	recs, err = c.History(ctx, client.HistoryOptions{Ref: full, Limit: 1, Trace: true})
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("build %q is not in kilnd's history (see kiln history ls)", ref)
	}
	return recs[0], nil
}

// resolveBuildRef turns a ref, a unique prefix of one or "" (the newest
// build) into a full ref.
func resolveBuildRef(ctx context.Context, c *client.Client, ref string) (string, error) {
	opts := client.HistoryOptions{}
	if ref == "" {
		opts.Limit = 1
	}
	recs, err := c.History(ctx, opts)
	if err != nil {
		return "", err
	}
	if ref == "" {
		if len(recs) == 0 {
			return "", fmt.Errorf("kilnd has no finished build in its history")
		}
		return recs[0].GetRef(), nil
	}
	var matches []string
	for _, r := range recs {
		if r.GetRef() == ref {
			return ref, nil
		}
		if strings.HasPrefix(r.GetRef(), ref) {
			matches = append(matches, r.GetRef())
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("build %q is not in kilnd's history (see kiln history ls)", ref)
	case 1:
		return matches[0], nil
	}
	return "", fmt.Errorf("build %q is ambiguous: %d builds start with it (%s)", ref, len(matches), strings.Join(matches, ", "))
}
