package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/ops"
)

// runChunk bounds one RunOutput message.
const runChunk = 64 << 10

// Run implements Runner: it unpacks the stored image (Puller.Pull finds it
// in the image store first), makes a writable snapshot on its filesystem,
// runs the process the image's config and the request say through the
// executor, streams stdout and stderr, and discards the snapshot. The last
// message is the exit code; a process that cannot start at all is an
// error instead. ctx ending (the client went, Ctrl-C) kills the container.
func (b *BuildBackend) Run(ctx context.Context, s RunStream) error {
	if err := b.checkParts("Run"); err != nil {
		return err
	}
	first, err := s.Recv()
	if err != nil {
		return fmt.Errorf("run: read request: %w", err)
	}
	req := first.GetRequest()
	if req == nil {
		return errdefs.Invalidf("run: the first message must be a RunRequest")
	}
	netMode, err := runNetwork(req.GetNetwork())
	if err != nil {
		return err
	}
	if wd := req.GetWorkdir(); wd != "" && !path.IsAbs(wd) {
		return errdefs.Invalidf("--workdir %q: the working directory must be an absolute path", wd)
	}
	plat := platforms.DefaultSpec()
	if p := req.GetPlatform(); p != "" {
		if plat, err = platforms.Parse(p); err != nil {
			return errdefs.Invalidf("--platform %q: %v", p, err)
		}
	}
	for _, kv := range req.GetEnv() {
		if k, _, _ := strings.Cut(kv, "="); k == "" || strings.ContainsAny(k, " \t\n") {
			return errdefs.Invalidf("-e %q: want KEY=value", kv)
		}
	}

	stored, err := b.storedImage(ctx, req.GetImage())
	if err != nil {
		return err
	}
	shown := imagestore.FamiliarName(stored.Name)
	img, err := b.parts.Puller.Pull(ctx, stored.Name, plat)
	if err != nil {
		return fmt.Errorf("run %s: %w", shown, err)
	}
	proc, err := runProcess(shown, img.Config.Config, req, netMode)
	if err != nil {
		return err
	}

	var parent ops.Ref
	if img.ChainID != "" {
		ref, err := b.parts.Snapshots.Load(ctx, img.ChainID)
		if err != nil {
			return fmt.Errorf("run %s: %w", shown, err)
		}
		defer ref.Release(context.WithoutCancel(ctx))
		parent = ref
	}
	active, err := b.parts.Snapshots.New(ctx, parent, "kiln run "+shown)
	if err != nil {
		return fmt.Errorf("run %s: %w", shown, err)
	}
	defer active.Discard(context.WithoutCancel(ctx))

	out := &runSender{s: s}
	proc.Stdout = out.writer(1)
	proc.Stderr = out.writer(2)
	if req.GetStdin() {
		pr, pw := io.Pipe()
		defer pr.Close()
		go receiveStdin(s, pw)
		proc.Stdin = pr
	}
	if err := out.send(&api.RunServerMessage{Started: &api.RunStarted{Image: shown, Digest: img.Descriptor.Digest.String()}}); err != nil {
		return err
	}
	err = b.parts.Executor.Run(ctx, executor.Mount{Dest: "/", Source: active.Mounts()}, nil, proc)
	exit := &api.RunExit{}
	var ee *executor.ExitError
	switch {
	case errors.As(err, &ee):
		exit.Code = int32(ee.Code)
	case err != nil:
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		code, ok := startFailure(err)
		if !ok {
			return fmt.Errorf("run %s: %w", shown, err)
		}
		exit.Code, exit.Error = int32(code), fmt.Sprintf("run %s: %v", shown, err)
	}
	return out.send(&api.RunServerMessage{Exit: exit})
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
func runNetwork(n string) (executor.NetMode, error) {
	switch n {
	case "", "default":
		return executor.NetDefault, nil
	case "host":
		return executor.NetHost, nil
	case "none":
		return executor.NetNone, nil
	case "bridge":
		return "", errdefs.Invalidf("--network bridge: kiln run has no bridge networks; use \"host\" (the default, as in builds) or \"none\"")
	}
	return "", errdefs.Invalidf("--network %q: want \"default\", \"host\" or \"none\"", n)
}

// runProcess merges the image's config with the request, as docker run
// does: --entrypoint replaces ENTRYPOINT and drops CMD; arguments replace
// CMD; -e adds to or overrides ENV; --workdir and --user override.
func runProcess(image string, cfg ocispec.ImageConfig, req *api.RunRequest, net executor.NetMode) (executor.Process, error) {
	entrypoint, cmd := cfg.Entrypoint, cfg.Cmd
	if req.GetHasEntrypoint() {
		entrypoint, cmd = req.GetEntrypoint(), nil
	}
	if len(req.GetArgs()) > 0 {
		cmd = req.GetArgs()
	}
	args := append(append([]string(nil), entrypoint...), cmd...)
	if len(args) == 0 || args[0] == "" {
		return executor.Process{}, errdefs.Invalidf("image %s has no command to run (no ENTRYPOINT or CMD): give one, as in kiln run %s /bin/sh -c 'echo hi'", image, image)
	}
	cwd := cfg.WorkingDir
	if req.GetWorkdir() != "" {
		cwd = req.GetWorkdir()
	}
	if cwd == "" {
		cwd = "/"
	}
	user := cfg.User
	if req.GetUser() != "" {
		user = req.GetUser()
	}
	return executor.Process{
		Args: args, Env: mergeEnv(cfg.Env, req.GetEnv()), User: user, Cwd: cwd,
		Net: net, Hostname: req.GetHostname(),
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

// receiveStdin copies the client's stdin messages into w until the client
// says EOF or its stream ends.
func receiveStdin(s RunStream, w *io.PipeWriter) {
	for {
		m, err := s.Recv()
		if err != nil {
			_ = w.Close()
			return
		}
		if len(m.GetStdin()) > 0 {
			if _, err := w.Write(m.GetStdin()); err != nil {
				return // the process is gone
			}
		}
		if m.GetStdinEof() {
			_ = w.Close()
			return
		}
	}
}

// runSender serialises the stream's sends (stdout and stderr are copied
// by two goroutines).
type runSender struct {
	s  RunStream
	mu sync.Mutex
}

func (r *runSender) send(m *api.RunServerMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.s.Send(m); err != nil {
		return errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("send to client: %w", err))
	}
	return nil
}

func (r *runSender) writer(stream int32) io.Writer {
	return runWriter{r: r, stream: stream}
}

type runWriter struct {
	r      *runSender
	stream int32
}

func (w runWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += runChunk {
		end := min(off+runChunk, len(p))
		// Send marshals before it returns, so p is not kept.
		if err := w.r.send(&api.RunServerMessage{Output: &api.RunOutput{Stream: w.stream, Data: p[off:end]}}); err != nil {
			return off, err
		}
	}
	return len(p), nil
}
