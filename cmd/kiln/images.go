package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/api"
)

// exitError makes kiln exit with code, printing nothing more (what went
// wrong was printed already, or the code is a container's).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode returns the code err asks kiln to exit with, if it is an
// *exitError.
func exitCode(err error) (int, bool) {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code, true
	}
	return 0, false
}

// argsBetween checks the number of arguments and names the expected ones
// in the error.
func argsBetween(lo, hi int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || (hi >= 0 && len(args) > hi) {
			want := fmt.Sprintf("%d", lo)
			switch {
			case hi < 0:
				want = fmt.Sprintf("at least %d", lo)
			case hi != lo:
				want = fmt.Sprintf("%d to %d", lo, hi)
			}
			return fmt.Errorf("%s takes %s argument(s) (%s), got %d (see '%s --help')", cmd.CommandPath(), want, names, len(args), cmd.CommandPath())
		}
		return nil
	}
}

// newImagesCmd is "kiln images", the same as "kiln image ls".
func newImagesCmd() *cobra.Command {
	cmd := newImageLsCmd()
	cmd.Use = "images"
	cmd.Aliases = nil
	return cmd
}

// newImageCmd is "kiln image" and its subcommands.
func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage kilnd's local images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(
		newImageLsCmd(),
		newImageRmCmd(),
		newImageInspectCmd(),
		newImageTagCmd(),
		newImageImportCmd(),
		newImagePushCmd(),
		newImageSaveCmd(),
	)
	return cmd
}

// imageRow is one line of kiln images.
type imageRow struct {
	Repository string
	Tag        string
	Name       string
	Digest     string
	MediaType  string
	Platforms  []string
	Created    time.Time
	Size       int64
}

func newImageLsCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List kilnd's local images",
		Long: `List the images in kilnd's local store: those kiln build -t and kiln image
import made. A later FROM of one of them needs no registry.

--format json prints one JSON object per image and line; any other --format
value is a Go template over an image, e.g. --format '{{.Name}} {{.Digest}}'.`,
		Args: argsBetween(0, 0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			imgs, err := c.ListImages(cmd.Context())
			if err != nil {
				return err
			}
			return printImages(cmd.OutOrStdout(), imgs, format, time.Now())
		},
	}
	cmd.Flags().StringVar(&format, "format", "", `output format: "table" (default), "json" or a Go template`)
	return cmd
}

// splitName splits "repo:tag" (the repository may have a registry port).
func splitName(n string) (repo, tag string) {
	i := strings.LastIndexByte(n, ':')
	if i < 0 || strings.Contains(n[i:], "/") {
		return n, ""
	}
	return n[:i], n[i+1:]
}

func rowOf(img *api.Image) imageRow {
	repo, tag := splitName(img.GetName())
	r := imageRow{
		Repository: repo, Tag: tag, Name: img.GetName(), Digest: img.GetDigest(),
		MediaType: img.GetMediaType(), Platforms: img.GetPlatforms(), Size: img.GetSize(),
	}
	if r.Platforms == nil {
		r.Platforms = []string{}
	}
	if img.GetCreated() != nil {
		r.Created = img.GetCreated().AsTime()
	}
	return r
}

// shortDigest is the first 12 hex digits, as docker shows image IDs.
func shortDigest(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if !ok {
		hex = d
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return hex
}

// humanSize prints bytes as docker does ("2.35MB").
func humanSize(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }

// ago prints how long ago t was ("2 hours ago").
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return units.HumanDuration(now.Sub(t)) + " ago"
}

func printImages(w io.Writer, imgs []*api.Image, format string, now time.Time) error {
	switch format {
	case "", "table":
		tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tPLATFORMS\tCREATED\tSIZE")
		for _, img := range imgs {
			r := rowOf(img)
			plats := strings.Join(r.Platforms, ",")
			if plats == "" {
				plats = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, shortDigest(r.Digest), plats, ago(r.Created, now), humanSize(r.Size))
		}
		return tw.Flush()
	case "json":
		enc := json.NewEncoder(w)
		for _, img := range imgs {
			if err := enc.Encode(rowOf(img)); err != nil {
				return err
			}
		}
		return nil
	default:
		t, err := template.New("format").Parse(format)
		if err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		for _, img := range imgs {
			if err := t.Execute(w, rowOf(img)); err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			fmt.Fprintln(w)
		}
		return nil
	}
}

func newImageRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove", "rmi"},
		Short:   "Remove images from kilnd's local store",
		Long: `Remove names from kilnd's local image store. The image's blobs stay on disk
until kiln prune finds that no other image needs them.`,
		Args: argsBetween(1, -1, "NAME..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.RemoveImages(cmd.Context(), args...)
			if err != nil {
				return err
			}
			for _, img := range resp.GetRemoved() {
				fmt.Fprintf(cmd.OutOrStdout(), "Untagged: %s (%s)\n", img.GetName(), img.GetDigest())
			}
			for _, msg := range resp.GetErrors() {
				fmt.Fprintf(cmd.ErrOrStderr(), "error: %s\n", msg)
			}
			if len(resp.GetErrors()) > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
}

func newImageTagCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Name an image of kilnd's local store under another name too",
		Example: `  kiln image tag my-app my-app:1.0
  kiln image tag my-app registry.example.com:5000/team/my-app:1.0`,
		Args: argsBetween(2, 2, "SOURCE TARGET"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.TagImage(cmd.Context(), args[0], args[1])
			return err
		},
	}
}

// inspectOut is what kiln image inspect prints for one image.
type inspectOut struct {
	Name      string
	Digest    string
	MediaType string
	Platforms []string
	Size      int64
	Created   time.Time
	// Index is set for a multi-platform image, with Manifests; a
	// single-platform image has Manifest and Config instead.
	Index     json.RawMessage   `json:",omitempty"`
	Manifests []inspectManifest `json:",omitempty"`
	Missing   []string          `json:",omitempty"`
	Manifest  json.RawMessage   `json:",omitempty"`
	Config    json.RawMessage   `json:",omitempty"`
}

type inspectManifest struct {
	Platform  string
	Digest    string
	MediaType string
	Manifest  json.RawMessage
	Config    json.RawMessage
}

func inspectOf(resp *api.InspectImageResponse) inspectOut {
	r := rowOf(resp.GetImage())
	out := inspectOut{Name: r.Name, Digest: r.Digest, MediaType: r.MediaType, Platforms: r.Platforms, Size: r.Size, Created: r.Created}
	if len(resp.GetIndex()) > 0 {
		out.Index, out.Missing = resp.GetIndex(), resp.GetMissing()
		for _, m := range resp.GetManifests() {
			out.Manifests = append(out.Manifests, inspectManifest{
				Platform: m.GetPlatform(), Digest: m.GetDigest(), MediaType: m.GetMediaType(),
				Manifest: m.GetManifest(), Config: m.GetConfig(),
			})
		}
		return out
	}
	if ms := resp.GetManifests(); len(ms) == 1 {
		out.Manifest, out.Config = ms[0].GetManifest(), ms[0].GetConfig()
	}
	return out
}

func newImageInspectCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show images' manifests and configs",
		Long: `Print a JSON array with one object per image: its name, digest, platforms,
size, and its manifest and config (for a multi-platform image, its index and
each platform's manifest and config).

--format is a Go template over one image instead, with the JSON documents
as maps, e.g. --format '{{.Config.config.Cmd}}'.`,
		Args: argsBetween(1, -1, "NAME..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var outs []inspectOut
			var failed error
			for _, n := range args {
				resp, err := c.InspectImage(cmd.Context(), n)
				if err != nil {
					if len(args) == 1 {
						return err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "error: %s\n", err)
					failed = &exitError{code: 1}
					continue
				}
				outs = append(outs, inspectOf(resp))
			}
			if err := printInspect(cmd.OutOrStdout(), outs, format); err != nil {
				return err
			}
			return failed
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", `"json" (default) or a Go template`)
	return cmd
}

func printInspect(w io.Writer, outs []inspectOut, format string) error {
	if format == "" || format == "json" {
		if outs == nil {
			outs = []inspectOut{}
		}
		b, err := json.MarshalIndent(outs, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	t, err := template.New("format").Parse(format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	for _, o := range outs {
		// Through JSON, so the template sees the documents as maps.
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		if err := t.Execute(w, v); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(w)
	}
	return nil
}
