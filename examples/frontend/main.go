// Command frontend is a tiny gateway frontend: a program that runs in a
// container, reads its build definition, and answers with LLB, through
// BuildKit's frontend API. Kiln runs it like BuildKit does, for a
// definition whose first line names its image:
//
//	# syntax=registry.example:5000/kilnfile:1
//	FROM busybox
//	FILE /hello.txt Hello from a custom frontend
//	RUN echo "$MESSAGE" > /message
//	CMD cat /hello.txt /message
//
// Instructions: FROM image (default: an empty filesystem), FILE path text,
// RUN shell command (build args are in its environment), CMD shell command.
// docs/extending.md shows how to build it into an image with kiln and use
// it; engine/gateway_example_test.go does exactly that.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/gateway/grpcclient"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	if err := grpcclient.RunFromEnvironment(context.Background(), build); err != nil {
		fmt.Fprintln(os.Stderr, "kilnfile frontend:", err)
		os.Exit(1)
	}
}

// build is the frontend: Kilnfile → LLB → result with an image config.
func build(ctx context.Context, c client.Client) (*client.Result, error) {
	opts := c.BuildOpts()
	name := opts.Opts["filename"]
	if name == "" {
		name = "Kilnfile"
	}
	src, err := readDefinition(ctx, c, opts.SessionID, path.Base(name))
	if err != nil {
		return nil, err
	}
	plat := platforms.DefaultSpec()
	if len(opts.Workers) > 0 && len(opts.Workers[0].Platforms) > 0 {
		plat = opts.Workers[0].Platforms[0]
	}
	var env []string
	for k, v := range opts.Opts {
		if arg, ok := strings.CutPrefix(k, "build-arg:"); ok {
			env = append(env, arg+"="+v)
		}
	}
	sort.Strings(env)

	st := llb.Scratch()
	img := ocispec.Image{Platform: plat, RootFS: ocispec.RootFS{Type: "layers"}}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		verb, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(verb) {
		case "FROM":
			ref, dgst, cfg, err := c.ResolveImageConfig(ctx, rest, sourceresolver.Opt{ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &plat}})
			if err != nil {
				return nil, fmt.Errorf("%s:%d: FROM %s: %w", name, n, rest, err)
			}
			if err := json.Unmarshal(cfg, &img); err != nil {
				return nil, err
			}
			st = llb.Image(ref+"@"+dgst.String(), llb.Platform(plat))
		case "FILE":
			p, text, _ := strings.Cut(rest, " ")
			st = st.File(llb.Mkdir(path.Dir(p), 0o755, llb.WithParents(true)).
				Mkfile(p, 0o644, []byte(text+"\n")), llb.WithCustomName("FILE "+p))
		case "RUN":
			opts := []llb.RunOption{llb.Args([]string{"/bin/sh", "-c", rest}), llb.WithCustomName("RUN " + rest)}
			for _, kv := range append(append([]string{}, img.Config.Env...), env...) {
				k, v, _ := strings.Cut(kv, "=")
				opts = append(opts, llb.AddEnv(k, v))
			}
			st = st.Run(opts...).Root()
		case "CMD":
			img.Config.Cmd = []string{"/bin/sh", "-c", rest}
		default:
			return nil, fmt.Errorf("%s:%d: unknown instruction %s", name, n, verb)
		}
	}

	def, err := st.Marshal(ctx, llb.Platform(plat))
	if err != nil {
		return nil, err
	}
	res, err := c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	res.AddMeta("containerimage.config", cfg)
	return res, nil
}

// readDefinition reads the definition file from the client's "dockerfile"
// directory (Kiln serves the file the client sent).
func readDefinition(ctx context.Context, c client.Client, session, name string) ([]byte, error) {
	st := llb.Local("dockerfile", llb.SessionID(session), llb.FollowPaths([]string{name}), llb.SharedKeyHint("dockerfile"))
	def, err := st.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	ref, err := res.SingleRef()
	if err != nil {
		return nil, err
	}
	return ref.ReadFile(ctx, client.ReadRequest{Filename: name})
}
