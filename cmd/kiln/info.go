package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/internal/binfmt"
)

func newInfoCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Show what kilnd is and how it runs builds",
		Long: `Show kilnd's version, root directory, listeners and worker (runtime,
snapshotter, platforms, parallelism).

--format json prints the answer as JSON; any other --format value is a Go
template over it, e.g. --format '{{.Worker.Snapshotter}}'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			info, err := c.Info(cmd.Context())
			if err != nil {
				return err
			}
			return printInfo(cmd.OutOrStdout(), info, format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", `output format: "json" or a Go template`)
	return cmd
}

func printInfo(w io.Writer, info *api.InfoResponse, format string) error {
	switch format {
	case "":
		return printInfoText(w, info)
	case "json":
		// protojson varies its spacing on purpose; json.Indent makes the
		// output stable for scripts and people.
		b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(info)
		if err != nil {
			return fmt.Errorf("encode info: %w", err)
		}
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return fmt.Errorf("encode info: %w", err)
		}
		out.WriteByte('\n')
		_, err = w.Write(out.Bytes())
		return err
	default:
		t, err := template.New("format").Parse(format)
		if err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		if err := t.Execute(w, info); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		_, err = fmt.Fprintln(w)
		return err
	}
}

func printInfoText(w io.Writer, info *api.InfoResponse) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, " %s:\t%s\n", k, v) }
	fmt.Fprintln(tw, "Daemon:")
	version := info.Version
	if info.Revision != "" {
		version += " (" + info.Revision + ")"
	}
	row("Version", version)
	row("Go version", info.GoVersion)
	row("PID", fmt.Sprint(info.Pid))
	row("Root", info.Root)
	cfgFile := info.ConfigFile
	if cfgFile == "" {
		cfgFile = "built-in defaults"
	}
	row("Config", cfgFile)
	row("Listeners", strings.Join(info.Listeners, ", "))
	row("Rootless", fmt.Sprint(info.Rootless))
	if wk := info.Worker; wk != nil {
		fmt.Fprintln(tw, "Worker:")
		rt := wk.Runtime
		if wk.RuntimePath != "" {
			rt += " (" + wk.RuntimePath + ")"
		} else {
			rt += " (not found)"
		}
		row("Runtime", rt)
		row("Snapshotter", wk.Snapshotter)
		row("Platforms", strings.Join(wk.Platforms, ", "))
		emulated := "none (" + binfmt.InstallHint + ")"
		if len(wk.EmulatedPlatforms) > 0 {
			emulated = strings.Join(wk.EmulatedPlatforms, ", ")
		}
		row("Emulated", emulated)
		row("Max parallelism", fmt.Sprint(wk.MaxParallelism))
		row("Cache size", config.Size(wk.CacheSize).String())
		row("Network mode", wk.NetworkMode)
	}
	backends := "none"
	if len(info.CacheBackends) > 0 {
		backends = strings.Join(info.CacheBackends, ", ")
	}
	fmt.Fprintln(tw, "Cache:")
	row("Remote backends", backends)
	return tw.Flush()
}
