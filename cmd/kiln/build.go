package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/client"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/registry"
)

type buildFlags struct {
	file          string
	tags          []string
	target        string
	buildArgs     []string
	buildContexts []string
	platforms     []string
	outputs       []string
	push, load    bool
	pull          bool
	addHosts      []string
	network       string
	cacheFrom     []string
	cacheTo       []string
	noCache       bool
	noCacheFilter []string
	secrets       []string
	ssh           []string
	progress      string
	metadataFile  string
	iidFile       string
	labels        []string
	allow         []string
	quiet         bool
	llb           string
}

func newBuildCmd() *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH | -",
		Short: "Build an image from a Dockerfile",
		Long: `Build an image from a Dockerfile and a context directory (PATH), or from a
Dockerfile on standard input ("-", no context). The flags are those of
docker buildx build.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("kiln build needs exactly one context argument (a directory, or - for a Dockerfile on stdin), got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", `name of the Dockerfile (default "PATH/Dockerfile"; "-" reads it from stdin)`)
	fl.StringArrayVarP(&f.tags, "tag", "t", nil, `name and optionally a tag ("name:tag")`)
	fl.StringVar(&f.target, "target", "", "build stage to build")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "set a build-time variable (KEY=value, or KEY to take it from the environment)")
	fl.StringArrayVar(&f.buildContexts, "build-context", nil, "additional build context (name=path or name=docker-image://ref)")
	fl.StringArrayVar(&f.platforms, "platform", nil, "target platform(s) (linux/amd64,linux/arm64)")
	fl.StringVar(&f.network, "network", "default", `network of RUN steps that do not set --network: "default", "none" or "host" (host needs --allow network.host)`)
	fl.StringArrayVar(&f.addHosts, "add-host", nil, `add a host to RUN steps' /etc/hosts ("host:ip" or "host=ip")`)
	fl.BoolVar(&f.pull, "pull", false, "resolve base images with their registry even when kilnd's image store has them")
	fl.BoolVar(&f.push, "push", false, `push the image to its registry: shorthand for --output type=registry (names from -t)`)
	fl.BoolVar(&f.load, "load", false, `keep the image in kilnd's image store: shorthand for --output type=image (what -t alone does)`)
	fl.StringArrayVarP(&f.outputs, "output", "o", nil, `output destination ("type=local,dest=path", "type=oci,dest=img.tar", "type=image,name=app", a directory, or "-")`)
	fl.StringArrayVar(&f.cacheFrom, "cache-from", nil, "external cache sources (type=registry,ref=...)")
	fl.StringArrayVar(&f.cacheTo, "cache-to", nil, "cache export destinations (type=registry,ref=...,mode=max)")
	fl.BoolVar(&f.noCache, "no-cache", false, "do not use the cache when building")
	fl.StringArrayVar(&f.noCacheFilter, "no-cache-filter", nil, "do not use the cache for these stages")
	fl.StringArrayVar(&f.secrets, "secret", nil, `secret to expose to the build ("id=mysecret,src=/local/secret" or "id=TOKEN,env=TOKEN")`)
	fl.StringArrayVar(&f.ssh, "ssh", nil, `ssh agent socket to expose to the build ("default" or "id=/path/to/agent.sock")`)
	fl.StringVar(&f.progress, "progress", "auto", "progress output: auto, tty, plain, rawjson or quiet")
	fl.StringVar(&f.metadataFile, "metadata-file", "", "write build result metadata to a file (JSON)")
	fl.StringVar(&f.iidFile, "iidfile", "", "write the image ID (config digest) to a file")
	fl.StringArrayVar(&f.labels, "label", nil, "set metadata for an image (KEY=value)")
	fl.StringArrayVar(&f.allow, "allow", nil, "allow an extra privileged entitlement (network.host, security.insecure)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "suppress the build output and print the image ID on success")
	fl.StringVar(&f.llb, "llb", "", `build a BuildKit LLB definition (as llb.WriteTo writes it; "-" reads stdin) instead of a Dockerfile; PATH is its local "context"`)
	return cmd
}

func runBuild(cmd *cobra.Command, f buildFlags, contextArg string) error {
	ctx := cmd.Context()
	for _, t := range f.tags {
		if _, err := registry.ParseReference(t); err != nil {
			return fmt.Errorf("-t: %w", err)
		}
	}
	req := &api.BuildRequest{
		Ref: newRef(), Frontend: "dockerfile", Target: f.target, NoCache: f.noCache,
		NoCacheFilter: f.noCacheFilter, Tags: f.tags, Entitlements: f.allow, ClientId: clientID(), Network: f.network, Pull: f.pull, AddHosts: f.addHosts,
	}
	dirs := map[string]string{}

	// The context and the Dockerfile (or the LLB definition).
	stdinUsed := false
	if f.llb != "" {
		if contextArg == "-" {
			return errors.New("kiln build --llb: PATH must be a directory (the definition's local \"context\"), not -")
		}
		if f.file != "" {
			return errors.New("kiln build --llb builds a definition, not a Dockerfile: drop -f")
		}
		b, err := readLLB(cmd, f.llb)
		if err != nil {
			return err
		}
		req.LlbDefinition, stdinUsed = b, true // no Dockerfile to read
	}
	if contextArg == "-" {
		if f.file != "" && f.file != "-" {
			return errors.New("kiln build -: the Dockerfile comes from stdin, so -f cannot name another file")
		}
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return fmt.Errorf("read Dockerfile from stdin: %w", err)
		}
		req.Dockerfile, req.DockerfileName, stdinUsed = b, "Dockerfile", true
	} else {
		abs, err := filepath.Abs(contextArg)
		if err != nil {
			return err
		}
		st, err := os.Stat(abs)
		if err != nil {
			return fmt.Errorf("build context %q: %w", contextArg, unwrapPathError(err))
		}
		if !st.IsDir() {
			return fmt.Errorf("build context %q is not a directory", contextArg)
		}
		req.HasContext, req.ContextPath = true, abs
		dirs["context"] = abs
	}
	if !stdinUsed {
		if err := readBuildDockerfile(cmd, f.file, req); err != nil {
			return err
		}
	}

	var err error
	if req.BuildArgs, err = buildArgs(f.buildArgs, os.LookupEnv); err != nil {
		return err
	}
	if req.Labels, err = keyValues(f.labels, "--label", false); err != nil {
		return err
	}
	req.Platforms = splitList(f.platforms)
	if err := addBuildContexts(req, dirs, f.buildContexts); err != nil {
		return err
	}
	switch f.network {
	case "default", "none", "host":
	default:
		return fmt.Errorf("--network %q: want default, none or host", f.network)
	}
	outputs := f.outputs
	if f.push || f.load {
		if len(f.tags) == 0 {
			return errors.New("--push and --load need a name: add -t NAME[:TAG]")
		}
		if f.push {
			outputs = append(outputs, "type=registry")
		}
		if f.load {
			outputs = append(outputs, "type=image")
		}
	}
	outs, err := parseOutputs(outputs)
	if err != nil {
		return err
	}
	for _, o := range outs {
		req.Outputs = append(req.Outputs, o.api)
	}
	if req.CacheFrom, err = parseCacheOptions(f.cacheFrom, "--cache-from"); err != nil {
		return err
	}
	if req.CacheTo, err = parseCacheOptions(f.cacheTo, "--cache-to"); err != nil {
		return err
	}
	cacheDests, err := localCacheDirs(req, dirs)
	if err != nil {
		return err
	}
	secrets, err := parseSecrets(f.secrets)
	if err != nil {
		return err
	}
	for id := range secrets {
		req.SecretIds = append(req.SecretIds, id)
	}
	agents, err := parseSSH(f.ssh)
	if err != nil {
		return err
	}
	for id := range agents {
		req.SshIds = append(req.SshIds, id)
	}
	mode := f.progress
	if f.quiet {
		mode = progress.ModeQuiet
	}
	if !validMode(mode) {
		return fmt.Errorf("--progress %q: want one of %s", mode, strings.Join(progress.Modes, ", "))
	}

	c, err := newClient(cmd)
	if err != nil {
		return err
	}
	defer c.Close()

	events := make(chan progress.Event, 256)
	displayDone := make(chan progress.Summary, 1)
	go func() {
		sum, _ := progress.Display(context.WithoutCancel(ctx), mode, cmd.ErrOrStderr(), events)
		displayDone <- sum
	}()
	res, err := c.Build(ctx, client.BuildOptions{
		Request: req,
		Dirs:    dirs,
		Secrets: secrets.lookup,
		SSH:     agents,
		Credentials: func(host string) (string, string, string) {
			return dockerCredentials(host)
		},
		Outputs: func(i int) (io.WriteCloser, error) {
			if i >= len(outs) { // a type=local --cache-to (see localCacheDirs)
				if dir, ok := cacheDests[i-len(outs)]; ok {
					return openCacheDir(dir)
				}
				return nil, fmt.Errorf("kilnd sent data for output %d, which is not client-side", i)
			}
			return outs[i].open(cmd.OutOrStdout())
		},
		Status: func(b *api.StatusBatch) {
			for _, e := range statusEvents(b) {
				events <- e
			}
		},
	})
	close(events)
	sum := <-displayDone
	if err != nil {
		return err
	}
	if mode != progress.ModeQuiet && mode != progress.ModeRawJSON {
		fmt.Fprintf(cmd.ErrOrStderr(), "Built in %.1fs: %d steps, %d cached\n", time.Duration(res.GetDurationNs()).Seconds(), res.GetSteps(), res.GetCached())
		if names := res.GetExporterResponse()["image.name"]; names != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "Image %s (%s)\n", names, res.GetExporterResponse()["containerimage.digest"])
		}
	}
	_ = sum
	resp := res.GetExporterResponse()
	if f.metadataFile != "" {
		if err := writeMetadata(f.metadataFile, resp); err != nil {
			return err
		}
	}
	if f.iidFile != "" {
		id := resp["containerimage.config.digest"]
		if id == "" {
			id = resp["containerimage.digest"]
		}
		if err := os.WriteFile(f.iidFile, []byte(id), 0o644); err != nil {
			return fmt.Errorf("--iidfile: %w", err)
		}
	}
	if f.quiet {
		fmt.Fprintln(cmd.OutOrStdout(), resp["containerimage.config.digest"])
	}
	return nil
}

// readLLB reads the --llb file ("-": stdin).
func readLLB(cmd *cobra.Command, file string) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if file == "-" {
		b, err = io.ReadAll(cmd.InOrStdin())
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("--llb: %w", unwrapPathError(err))
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("--llb %s: the definition is empty", file)
	}
	return b, nil
}

// readBuildDockerfile reads -f (default PATH/Dockerfile) and its .dockerignore.
func readBuildDockerfile(cmd *cobra.Command, file string, req *api.BuildRequest) error {
	name := file
	switch {
	case file == "-":
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return fmt.Errorf("read Dockerfile from stdin: %w", err)
		}
		req.Dockerfile, req.DockerfileName = b, "Dockerfile"
	default:
		if name == "" {
			name = filepath.Join(req.ContextPath, "Dockerfile")
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("read Dockerfile: %w", unwrapPathError(err))
		}
		req.Dockerfile = b
		req.DockerfileName = displayName(name, req.ContextPath)
	}
	// <Dockerfile>.dockerignore next to the Dockerfile wins over the
	// context's .dockerignore, as in Docker.
	var candidates []string
	if file != "-" {
		candidates = append(candidates, name+".dockerignore")
	}
	if req.HasContext {
		candidates = append(candidates, filepath.Join(req.ContextPath, ".dockerignore"))
	}
	for _, p := range candidates {
		b, err := os.ReadFile(p)
		if err == nil {
			req.Dockerignore, req.HasDockerignore = b, true
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read %s: %w", p, err)
		}
	}
	return nil
}

// displayName is the Dockerfile's name for messages: relative to the
// context when inside it.
func displayName(path, ctxDir string) string {
	abs, err := filepath.Abs(path)
	if err == nil && ctxDir != "" {
		if rel, err := filepath.Rel(ctxDir, abs); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return path
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// buildArgs is the --build-arg map, plus SOURCE_DATE_EPOCH from the
// client's environment when no --build-arg gives it (as buildx does), so
// that a reproducible-build setup works without repeating it as a flag.
func buildArgs(list []string, lookupEnv func(string) (string, bool)) (map[string]string, error) {
	m, err := keyValues(list, "--build-arg", true)
	if err != nil {
		return nil, err
	}
	if _, given := m["SOURCE_DATE_EPOCH"]; !given {
		if v, ok := lookupEnv("SOURCE_DATE_EPOCH"); ok && v != "" {
			m["SOURCE_DATE_EPOCH"] = v
		}
	}
	return m, nil
}

func keyValues(list []string, flag string, fromEnv bool) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=value", flag, kv)
		}
		if !ok {
			if !fromEnv {
				return nil, fmt.Errorf("%s %q: want KEY=value", flag, kv)
			}
			ev, set := os.LookupEnv(k)
			if !set {
				continue // like docker: an unset variable is not passed
			}
			v = ev
		}
		m[k] = v
	}
	return m, nil
}

func splitList(list []string) []string {
	var out []string
	for _, s := range list {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func addBuildContexts(req *api.BuildRequest, dirs map[string]string, list []string) error {
	for _, bc := range list {
		name, val, ok := strings.Cut(bc, "=")
		if !ok || name == "" || val == "" {
			return fmt.Errorf("--build-context %q: want name=path or name=docker-image://ref", bc)
		}
		if ref, ok := strings.CutPrefix(val, "docker-image://"); ok {
			req.NamedContexts = append(req.NamedContexts, &api.NamedContext{Name: name, Image: ref})
			continue
		}
		abs, err := filepath.Abs(val)
		if err != nil {
			return err
		}
		if st, err := os.Stat(abs); err != nil || !st.IsDir() {
			return fmt.Errorf("--build-context %s=%s: not a directory", name, val)
		}
		req.NamedContexts = append(req.NamedContexts, &api.NamedContext{Name: name, LocalPath: abs})
		dirs["context:"+name] = abs
	}
	return nil
}

func validMode(m string) bool {
	for _, x := range progress.Modes {
		if m == x {
			return true
		}
	}
	return false
}

func writeMetadata(path string, resp map[string]string) error {
	md := map[string]any{}
	for k, v := range resp {
		md[k] = v
		if k == "containerimage.descriptor" {
			var d any
			if json.Unmarshal([]byte(v), &d) == nil {
				md[k] = d
			}
		}
	}
	b, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--metadata-file: %w", err)
	}
	return nil
}

// newRef names a build for the daemon's history.
func newRef() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clientID identifies this machine and user, so the daemon keeps one copy
// of each context per client and sends only changes next time.
func clientID() string {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d", host, os.Getuid())))
	return hex.EncodeToString(sum[:16])
}
