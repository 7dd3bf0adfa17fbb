package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/progress"
)

// usageCategories are the kinds of usage record, in the order du prints
// them, with their names for people.
var usageCategories = []struct{ typ, name string }{
	{"regular", "cache records"},
	{"snapshot", "snapshots"},
	{"blob", "blobs"},
	{"exec.cachemount", "cache mounts"},
	{"source.local", "contexts"},
}

func categoryName(typ string) string {
	for _, c := range usageCategories {
		if c.typ == typ {
			return c.name
		}
	}
	return typ
}

func newDuCmd() *cobra.Command {
	var verbose bool
	var format string
	cmd := &cobra.Command{
		Use:   "du",
		Short: "Show the disk space kilnd uses",
		Long: `Show the disk space kilnd uses, one line per kind: cache records (each
counts its result snapshot), snapshots no record names (image layers),
content blobs, RUN --mount=type=cache directories and kept build contexts.
RECLAIMABLE is what kiln prune --all could free now: not in use and not
needed by an image in the local store.

--verbose lists every record first; --format json prints one JSON object
per record and line.`,
		Args: argsBetween(0, 0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			recs, err := c.DiskUsage(cmd.Context())
			if err != nil {
				return err
			}
			switch format {
			case "", "table":
			case "json":
				return printUsageJSON(cmd.OutOrStdout(), recs)
			default:
				return fmt.Errorf("--format %q: want \"table\" or \"json\"", format)
			}
			if verbose {
				if err := printUsageRecords(cmd.OutOrStdout(), recs, time.Now()); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout())
			}
			return printUsageSummary(cmd.OutOrStdout(), recs)
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every record")
	cmd.Flags().StringVar(&format, "format", "", `output format: "table" (default) or "json"`)
	return cmd
}

func printUsageJSON(w io.Writer, recs []*api.UsageRecord) error {
	for _, r := range recs {
		b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(r)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
			return err
		}
	}
	return nil
}

// shortID shortens digests to 12 hex digits.
func shortID(id string) string {
	if strings.HasPrefix(id, "sha256:") {
		return shortDigest(id)
	}
	return id
}

func printUsageRecords(w io.Writer, recs []*api.UsageRecord, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tSIZE\tRECLAIMABLE\tLAST USED\tDESCRIPTION")
	for _, r := range recs {
		last := "-"
		if r.GetLastUsed() != nil {
			last = ago(r.GetLastUsed().AsTime(), now)
		}
		reclaim := "yes"
		switch {
		case r.GetInUse():
			reclaim = "in use"
		case r.GetShared():
			reclaim = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", shortID(r.GetId()), categoryName(r.GetType()), humanSize(r.GetSize()), reclaim, last, r.GetDescription())
	}
	return tw.Flush()
}

type usageSum struct {
	count         int
	size, reclaim int64
}

func printUsageSummary(w io.Writer, recs []*api.UsageRecord) error {
	sums := map[string]*usageSum{}
	var total usageSum
	var shared []*api.UsageRecord
	for _, r := range recs {
		if r.GetType() == "shared" {
			shared = append(shared, r)
			continue
		}
		s := sums[r.GetType()]
		if s == nil {
			s = &usageSum{}
			sums[r.GetType()] = s
		}
		s.count++
		s.size += r.GetSize()
		total.size += r.GetSize()
		if !r.GetInUse() && !r.GetShared() {
			s.reclaim += r.GetSize()
			total.reclaim += r.GetSize()
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tCOUNT\tSIZE\tRECLAIMABLE")
	for _, c := range usageCategories {
		s := sums[c.typ]
		if s == nil {
			s = &usageSum{}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", c.name, s.count, humanSize(s.size), humanSize(s.reclaim))
	}
	fmt.Fprintf(tw, "Total\t\t%s\t%s\n", humanSize(total.size), humanSize(total.reclaim))
	// Shared caches are outside the root and not in the total.
	for _, r := range shared {
		writing := ""
		if n := r.GetPendingWrites(); n > 0 {
			writing = fmt.Sprintf("\t(writing %d more steps)", n)
		}
		fmt.Fprintf(tw, "shared cache (%s)\t%d\t%s\t-%s\n", r.GetId(), r.GetUsageCount(), humanSize(r.GetSize()), writing)
	}
	return tw.Flush()
}

func newPruneCmd() *cobra.Command {
	var (
		all              bool
		force            bool
		verbose          bool
		keepDur, keepStr string
		filters          []string
	)
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove build cache and unused data",
		Long: `Remove cache records, the snapshots only they needed, content blobs no image
in the local store needs, RUN --mount=type=cache directories no running step
uses, and build contexts kept for incremental transfers. Nothing a running
build or container uses, and nothing an image in the local store is made of,
is removed. A removed cache mount starts empty at its next build.

Without --all, the records of pulled base images stay, so the next build
does not download them again. --keep-duration keeps what was used within
that long (e.g. 24h, 7d); --keep-storage removes the least recently used
records and cache mounts only until they fit in that size (e.g. 5GB);
--filter type==exec.cachemount (or regular, source.local) prunes only
that kind.`,
		Args: argsBetween(0, 0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &api.PruneRequest{All: all, Filters: filters}
			if keepDur != "" {
				d, err := parseKeepDuration(keepDur)
				if err != nil {
					return err
				}
				req.KeepDurationNs = int64(d)
			}
			if keepStr != "" {
				n, err := config.ParseSize(keepStr)
				if err != nil {
					return fmt.Errorf("--keep-storage: %w", err)
				}
				req.KeepBytes = int64(n)
			}
			if !force {
				ok, err := confirmPrune(cmd, all)
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("prune canceled: answer y, or pass -f/--force")
				}
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var removed []*api.UsageRecord
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			if verbose {
				fmt.Fprintln(tw, "REMOVED\tID\tSIZE\tDESCRIPTION")
			}
			err = c.Prune(cmd.Context(), req, func(r *api.UsageRecord) {
				removed = append(removed, r)
				if verbose {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", categoryName(r.GetType()), shortID(r.GetId()), humanSize(r.GetSize()), r.GetDescription())
				}
			})
			if verbose && len(removed) > 0 {
				_ = tw.Flush()
			}
			printPruneSummary(out, removed)
			return err
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "remove the records of base images too")
	fl.BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	fl.BoolVarP(&verbose, "verbose", "v", false, "list every removed record")
	fl.StringVar(&keepDur, "keep-duration", "", "keep what was used within this long (24h, 7d)")
	fl.StringVar(&keepStr, "keep-storage", "", "keep the cache records and cache mounts within this size (5GB, 512MiB)")
	fl.StringArrayVar(&filters, "filter", nil, `prune only this kind: "type==regular", "type==exec.cachemount" or "type==source.local" (repeat for several)`)
	return cmd
}

// parseKeepDuration is time.ParseDuration plus days ("7d").
func parseKeepDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err == nil && n >= 0 {
			return time.Duration(n * float64(24*time.Hour)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("--keep-duration %q: want a duration such as 30m, 24h or 7d", s)
	}
	return d, nil
}

// confirmPrune asks before pruning, as docker builder prune does.
func confirmPrune(cmd *cobra.Command, all bool) (bool, error) {
	what := "all build cache and cache mounts not used by a running build, and unused blobs and contexts"
	if !all {
		what = "build cache (except base images) and cache mounts not used by a running build, and unused blobs and contexts"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "WARNING! This will remove %s.\nAre you sure you want to continue? [y/N] ", what)
	if progress.IsTerminal(cmd.ErrOrStderr()) {
		defer fmt.Fprintln(cmd.ErrOrStderr())
	}
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read answer: %w", err)
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}

func printPruneSummary(w io.Writer, removed []*api.UsageRecord) {
	counts := map[string]int{}
	var total int64
	for _, r := range removed {
		counts[r.GetType()]++
		total += r.GetSize()
	}
	var parts []string
	for _, c := range usageCategories {
		if n := counts[c.typ]; n > 0 {
			name := c.name
			if n == 1 {
				name = strings.TrimSuffix(name, "s")
			}
			parts = append(parts, fmt.Sprintf("%d %s", n, name))
		}
	}
	if len(parts) == 0 {
		parts = []string{"nothing"}
	}
	fmt.Fprintf(w, "Removed %s\nTotal reclaimed: %s\n", strings.Join(parts, ", "), humanSize(total))
}
