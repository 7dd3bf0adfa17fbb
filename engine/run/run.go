package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/source/image"
	"github.com/kiln-build/kiln/worker"
)

// Images finds stored images (*images.Service).
type Images interface {
	// Stored returns the image store's entry of ref, or an
	// errdefs.ErrNotFound error in the user's terms.
	Stored(ctx context.Context, ref string) (imagestore.Image, error)
}

// Options are what the service works with. Every field is required.
type Options struct {
	Images    Images
	Puller    *image.Puller
	Snapshots *worker.Snapshots
	Executor  executor.Executor
}

// Service runs containers from stored images. It is safe for concurrent
// use.
type Service struct {
	o Options
}

// New returns the service.
func New(o Options) *Service { return &Service{o: o} }

// Request is one kiln run.
type Request struct {
	Image string
	// Args replace the image's CMD when not empty.
	Args []string
	// Entrypoint, when HasEntrypoint, replaces the image's ENTRYPOINT
	// (and drops its CMD); an empty one runs Args alone.
	Entrypoint    []string
	HasEntrypoint bool
	// Env adds to or overrides the image's ENV (KEY=value).
	Env      []string
	Workdir  string
	User     string
	Hostname string
	// Network is "default" (or ""), "host" or "none".
	Network string
	// Platform picks one platform of a multi-platform image (default:
	// the daemon's).
	Platform string
	// Stdin, when set, is the process's standard input.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output; they may be called
	// from two goroutines at once.
	Stdout, Stderr io.Writer
	// Started, when set, is called once the image is ready, just before
	// the process starts; an error from it stops the run.
	Started func(Started) error
}

// Started says what runs.
type Started struct {
	Image  string // the image's name
	Digest digest.Digest
}

// Exit is how the process ended.
type Exit struct {
	Code int
	// Error says why a process could not start (Code 126 or 127, as
	// docker run's).
	Error string
}

// Run unpacks the stored image (Puller.Pull finds it in the image store
// first), makes a writable snapshot on its filesystem, runs the process
// the image's config and the request say through the executor, and
// discards the snapshot. It returns the exit code; a process that cannot
// start at all is an Exit with Error, a failure around it an error. ctx
// ending (the client went, Ctrl-C) kills the container.
func (s *Service) Run(ctx context.Context, req Request) (*Exit, error) {
	netMode, err := runNetwork(req.Network)
	if err != nil {
		return nil, err
	}
	if wd := req.Workdir; wd != "" && !path.IsAbs(wd) {
		return nil, errdefs.Invalidf("--workdir %q: the working directory must be an absolute path", wd)
	}
	plat := platforms.DefaultSpec()
	if p := req.Platform; p != "" {
		if plat, err = platforms.Parse(p); err != nil {
			return nil, errdefs.Invalidf("--platform %q: %v", p, err)
		}
	}
	for _, kv := range req.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "" || strings.ContainsAny(k, " \t\n") {
			return nil, errdefs.Invalidf("-e %q: want KEY=value", kv)
		}
	}

	stored, err := s.o.Images.Stored(ctx, req.Image)
	if err != nil {
		return nil, err
	}
	shown := imagestore.FamiliarName(stored.Name)
	img, err := s.o.Puller.Pull(ctx, stored.Name, plat)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", shown, err)
	}
	proc, err := runProcess(shown, img.Config.Config, req, netMode)
	if err != nil {
		return nil, err
	}

	var parent ops.Ref
	if img.ChainID != "" {
		ref, err := s.o.Snapshots.Load(ctx, img.ChainID)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", shown, err)
		}
		defer ref.Release(context.WithoutCancel(ctx))
		parent = ref
	}
	active, err := s.o.Snapshots.New(ctx, parent, "kiln run "+shown)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", shown, err)
	}
	defer active.Discard(context.WithoutCancel(ctx))

	proc.Stdout, proc.Stderr, proc.Stdin = req.Stdout, req.Stderr, req.Stdin
	if req.Started != nil {
		if err := req.Started(Started{Image: shown, Digest: img.Descriptor.Digest}); err != nil {
			return nil, err
		}
	}
	err = s.o.Executor.Run(ctx, executor.Mount{Dest: "/", Source: active.Mounts()}, nil, proc)
	exit := &Exit{}
	var ee *executor.ExitError
	switch {
	case errors.As(err, &ee):
		exit.Code = ee.Code
	case err != nil:
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		code, ok := startFailure(err)
		if !ok {
			return nil, fmt.Errorf("run %s: %w", shown, err)
		}
		exit.Code, exit.Error = code, fmt.Sprintf("run %s: %v", shown, err)
	}
	return exit, nil
}

// startFailure recognises a command that could not start and returns
// docker run's exit code for it: 127 when it was not found, else 126.
func startFailure(err error) (int, bool) {
	msg := err.Error()
	if !strings.Contains(msg, "unable to start container process") &&
		!strings.Contains(msg, "unable to find user") && !strings.Contains(msg, "unable to find group") {
		return 0, false
	}
	if strings.Contains(msg, "no such file or directory") || strings.Contains(msg, "executable file not found") {
		return 127, true
	}
	return 126, true
}

// runNetwork maps --network.
func runNetwork(n string) (sandbox.NetMode, error) {
	if n == "bridge" {
		return "", errdefs.Invalidf("--network bridge: kiln run has no bridge networks; use \"host\" (the default, as in builds) or \"none\"")
	}
	m, ok := sandbox.ParseNetMode(n)
	if !ok {
		return "", errdefs.Invalidf("--network %q: want \"default\", \"host\" or \"none\"", n)
	}
	return m, nil
}

// runProcess merges the image's config with the request, as docker run
// does: --entrypoint replaces ENTRYPOINT and drops CMD; arguments replace
// CMD; -e adds to or overrides ENV; --workdir and --user override.
func runProcess(image string, cfg ocispec.ImageConfig, req Request, net sandbox.NetMode) (executor.Process, error) {
	entrypoint, cmd := cfg.Entrypoint, cfg.Cmd
	if req.HasEntrypoint {
		entrypoint, cmd = req.Entrypoint, nil
	}
	if len(req.Args) > 0 {
		cmd = req.Args
	}
	args := append(append([]string(nil), entrypoint...), cmd...)
	if len(args) == 0 || args[0] == "" {
		return executor.Process{}, errdefs.Invalidf("image %s has no command to run (no ENTRYPOINT or CMD): give one, as in kiln run %s /bin/sh -c 'echo hi'", image, image)
	}
	cwd := cfg.WorkingDir
	if req.Workdir != "" {
		cwd = req.Workdir
	}
	if cwd == "" {
		cwd = "/"
	}
	user := cfg.User
	if req.User != "" {
		user = req.User
	}
	return executor.Process{
		Args: args, Env: mergeEnv(cfg.Env, req.Env), User: user, Cwd: cwd,
		Net: net, Hostname: req.Hostname,
	}, nil
}

// mergeEnv returns base with the entries of extra added, an entry of extra
// replacing the one of base with the same name.
func mergeEnv(base, extra []string) []string {
	out := append([]string(nil), base...)
	index := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}
