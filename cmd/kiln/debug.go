package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/platforms"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile"
	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
	"github.com/kiln-build/kiln/frontend/dockerfile/parser"
	"github.com/kiln-build/kiln/graph"
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
		newDebugGraphCmd(),
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
			res, err := parser.Parse(cmd.Context(), src, name)
			if err != nil {
				return err
			}
			if check {
				df, err := instructions.Parse(cmd.Context(), src, name)
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

// debugGraphOptions are the flags of "kiln debug graph".
type debugGraphOptions struct {
	target        string
	buildArgs     []string
	platforms     []string
	buildPlatform string
	format        string
	contexts      []string
}

func newDebugGraphCmd() *cobra.Command {
	var o debugGraphOptions
	cmd := &cobra.Command{
		Use:   "graph FILE",
		Short: "Print the build graph of a Dockerfile",
		Long: `Print the build graph Kiln makes from a Dockerfile, without a daemon.

Base images are not looked up: references are normalised but not pinned and
their configs are empty, so the output is the same on every machine (a note
on standard error says so). The .dockerignore is FILE.dockerignore next to
FILE, else .dockerignore in FILE's directory.

--format json prints, per platform, the graph (vertices in order, inputs by
digest) and the image config; --format dot prints a Graphviz graph of all
platforms.`,
		Example: `  kiln debug graph Dockerfile
  kiln debug graph --target build --build-arg VERSION=1.2 --platform linux/arm64 Dockerfile
  kiln debug graph --format dot Dockerfile | dot -Tsvg > graph.svg`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDebugGraph(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.target, "target", "", "stage to build (default: the last one)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "build-time variable, KEY=VALUE (KEY alone takes it from the environment)")
	f.StringSliceVar(&o.platforms, "platform", nil, "target platforms, e.g. linux/arm64 (default: the build platform)")
	f.StringVar(&o.buildPlatform, "build-platform", "", "the platform of the machine that builds (default: this one)")
	f.StringVar(&o.format, "format", "json", "output format: json or dot")
	f.StringArrayVar(&o.contexts, "build-context", nil, "additional build context, NAME=PATH or NAME=docker-image://REF")
	_ = f.MarkHidden("build-platform")
	return cmd
}

// debugGraphPlatform is one platform in the json output.
type debugGraphPlatform struct {
	Platform string                  `json:"platform"`
	Graph    graph.Definition        `json:"graph"`
	Config   imageconfig.DockerImage `json:"config"`
}

func runDebugGraph(cmd *cobra.Command, file string, o debugGraphOptions) error {
	if o.format != "json" && o.format != "dot" {
		return fmt.Errorf("invalid --format %q: want json or dot", o.format)
	}
	src, name, err := readDockerfile(cmd.InOrStdin(), file)
	if err != nil {
		return err
	}
	req, err := o.request(src, name, file)
	if err != nil {
		return err
	}
	res, err := dockerfile.New().Solve(cmd.Context(), req)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	if _, err := fmt.Fprintln(stderr, "note: base images were not resolved: references are not pinned and their configs are empty"); err != nil {
		return err
	}
	for _, w := range res.Warnings {
		where := ""
		if w.File != "" {
			where = fmt.Sprintf("%s:%d: ", w.File, w.Range.Start)
		}
		if _, err := fmt.Fprintf(stderr, "warning: %s%s: %s\n", where, w.Rule, w.Message); err != nil {
			return err
		}
	}
	out := cmd.OutOrStdout()
	if o.format == "dot" {
		var roots []*graph.Vertex
		for _, img := range res.Images {
			roots = append(roots, img.Root)
		}
		return graph.WriteDot(out, roots...)
	}
	var doc []debugGraphPlatform
	for _, img := range res.Images {
		doc = append(doc, debugGraphPlatform{Platform: platforms.FormatAll(img.Platform), Graph: graph.Marshal(img.Root), Config: img.DockerConfig()})
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// request builds the frontend request of "kiln debug graph".
func (o debugGraphOptions) request(src []byte, name, file string) (frontend.Request, error) {
	req := frontend.Request{
		Dockerfile:     src,
		DockerfileName: name,
		Target:         o.target,
		BuildArgs:      map[string]string{},
		ContextName:    "context",
		Resolver:       dockerfile.OfflineResolver{},
		BuildPlatform:  platforms.DefaultSpec(),
	}
	if o.buildPlatform != "" {
		p, err := platforms.Parse(o.buildPlatform)
		if err != nil {
			return req, fmt.Errorf("invalid --build-platform %q: %w", o.buildPlatform, err)
		}
		req.BuildPlatform = p
	}
	for _, ps := range o.platforms {
		p, err := platforms.Parse(strings.TrimSpace(ps))
		if err != nil {
			return req, fmt.Errorf("invalid --platform %q: %w", ps, err)
		}
		req.Platforms = append(req.Platforms, p)
	}
	for _, a := range o.buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		req.BuildArgs[k] = v
	}
	for _, c := range o.contexts {
		k, v, ok := strings.Cut(c, "=")
		if !ok || k == "" || v == "" {
			return req, fmt.Errorf("invalid --build-context %q: want NAME=PATH or NAME=docker-image://REF", c)
		}
		if req.NamedContexts == nil {
			req.NamedContexts = map[string]frontend.NamedContext{}
		}
		switch {
		case strings.HasPrefix(v, "docker-image://"):
			req.NamedContexts[k] = frontend.NamedContext{Image: strings.TrimPrefix(v, "docker-image://")}
		case strings.Contains(v, "://"):
			return req, fmt.Errorf("invalid --build-context %q: only local directories and docker-image:// are supported", c)
		default:
			req.NamedContexts[k] = frontend.NamedContext{Local: k}
		}
	}
	if file != "-" {
		for _, p := range []string{file + ".dockerignore", filepath.Join(filepath.Dir(file), ".dockerignore")} {
			data, err := os.ReadFile(p)
			if err == nil {
				req.Dockerignore = data
				break
			}
			if !os.IsNotExist(err) {
				return req, fmt.Errorf("read %s: %w", p, err)
			}
		}
	}
	return req, nil
}
