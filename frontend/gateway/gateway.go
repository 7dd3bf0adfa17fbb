package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/graph"
)

// Name is the frontend's name in the engine's map, BuildKit's name for it.
const Name = "gateway.v0"

// maxMsgSize bounds one gRPC message between Kiln and a frontend (LLB
// definitions, files read), as BuildKit's defaults do.
const maxMsgSize = 64 << 20

// Frontend runs gateway frontends. It is safe for concurrent use; each
// Solve runs its own frontend container.
type Frontend struct {
	product string
}

var _ frontend.Frontend = (*Frontend)(nil)

// Option configures a Frontend.
type Option func(*Frontend)

// WithProduct sets BUILDKIT_EXPORTEDPRODUCT, the product name frontends
// see (default "kiln").
func WithProduct(name string) Option { return func(f *Frontend) { f.product = name } }

// New returns the gateway frontend.
func New(opts ...Option) *Frontend {
	f := &Frontend{product: "kiln"}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Solve runs the frontend image req.Opts["source"] and returns the result
// it hands back.
func (f *Frontend) Solve(ctx context.Context, req frontend.Request) (*frontend.Result, error) {
	if req.Bridge == nil {
		return nil, errdefs.WithClass(errdefs.ErrUnimplemented, errors.New("gateway frontend: the engine gave no bridge to run the frontend with"))
	}
	if req.Resolver == nil {
		return nil, errdefs.WithClass(errdefs.ErrUnimplemented, errors.New("gateway frontend: the engine gave no image resolver"))
	}
	source := req.Opts["source"]
	if source == "" {
		return nil, errdefs.Invalidf("frontend %s needs the \"source\" option: the frontend image to run", Name)
	}
	resolved, err := req.Resolver.ResolveImageConfig(ctx, source, req.BuildPlatform)
	if err != nil {
		return nil, fmt.Errorf("frontend image %s: %w", source, err)
	}
	var img imageconfig.DockerImage
	if err := json.Unmarshal(resolved.Config, &img); err != nil {
		return nil, errdefs.Invalidf("frontend image %s: its config cannot be read: %v", source, err)
	}
	rootV := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Image: &graph.ImageSource{Ref: resolved.Ref}}},
		graph.Meta{Name: "[internal] load frontend " + source})
	root, err := req.Bridge.Solve(ctx, rootV)
	if err != nil {
		return nil, fmt.Errorf("frontend image %s: %w", source, err)
	}
	defer root.Release(context.WithoutCancel(ctx))

	opts := Opts(req)
	if err := checkCaps(img.Config.Labels, opts); err != nil {
		return nil, err
	}
	s := newServer(req, opts)
	defer s.release(context.WithoutCancel(ctx))
	proc, err := f.process(img, opts, req.BuildPlatform)
	if err != nil {
		return nil, err
	}
	if err := s.run(ctx, root, proc); err != nil {
		var se *errdefs.SourceError
		if errors.As(err, &se) {
			return nil, err // about the user's file: its location leads
		}
		return nil, fmt.Errorf("frontend %s: %w", source, err)
	}
	return s.result()
}

// process is the frontend container's process: the image's entrypoint
// (or /run), environment and working directory, plus BuildKit's
// variables.
func (f *Frontend) process(img imageconfig.DockerImage, opts map[string]string, plat ocispec.Platform) (frontend.Process, error) {
	c := img.Config
	p := frontend.Process{Args: c.Entrypoint, Env: append([]string(nil), c.Env...), Cwd: c.WorkingDir}
	if len(p.Args) == 0 {
		p.Args = []string{"/run"}
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if v, ok := c.Labels["moby.buildkit.frontend.network.none"]; ok {
		if none, _ := strconv.ParseBool(v); none {
			p.Network = sandbox.NetNone
		}
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		p.Env = append(p.Env, fmt.Sprintf("BUILDKIT_FRONTEND_OPT_%d=%s=%s", i, k, opts[k]))
	}
	workers, err := json.Marshal([]workerInfo{{ID: "kiln", Platforms: []ocispec.Platform{plat}}})
	if err != nil {
		return p, err
	}
	p.Env = append(p.Env, "BUILDKIT_SESSION_ID="+randomID(), "BUILDKIT_WORKERS="+string(workers), "BUILDKIT_EXPORTEDPRODUCT="+f.product)
	return p, nil
}

// workerInfo is the JSON BuildKit's frontends read from BUILDKIT_WORKERS
// (gateway client.WorkerInfo).
type workerInfo struct {
	ID        string
	Labels    map[string]string `json:",omitempty"`
	Platforms []ocispec.Platform
}

// checkCaps refuses a build whose "frontend.caps" option asks for
// capabilities the frontend image does not declare in its
// moby.buildkit.frontend.caps label (BuildKit's rule).
func checkCaps(labels map[string]string, opts map[string]string) error {
	want := opts["frontend.caps"]
	if want == "" {
		return nil
	}
	have := map[string]bool{}
	for _, c := range strings.Split(labels["moby.buildkit.frontend.caps"], ",") {
		have[strings.TrimSpace(c)] = true
	}
	for _, c := range strings.Split(want, ",") {
		if c = strings.TrimSpace(c); c != "" && !have[c] {
			return errdefs.WithClass(errdefs.ErrUnimplemented, fmt.Errorf("frontend %s does not support the capability %s", opts["source"], c))
		}
	}
	return nil
}

// run serves the LLBBridge over the stdio of the frontend container and
// waits until the container exits.
func (s *server) run(ctx context.Context, root frontend.Ref, p frontend.Process) error {
	// The container reads requests from inR and writes answers to outW.
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return err
	}
	conn := newPipeConn(outR, inW)
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(maxMsgSize), grpc.MaxSendMsgSize(maxMsgSize))
	gwpb.RegisterLLBBridgeServer(gs, s)
	lis := newConnListener(conn)
	var wg sync.WaitGroup
	wg.Go(func() { _ = gs.Serve(lis) })

	stderr := &tailBuffer{max: 16 << 10}
	p.Stdin, p.Stdout, p.Stderr = inR, outW, stderr
	rerr := s.req.Bridge.Run(ctx, root, p)

	gs.Stop()
	_ = lis.Close()
	_ = conn.Close()
	wg.Wait()
	inR.Close()
	outW.Close()

	s.mu.Lock()
	returned, retErr := s.returned, s.retErr
	s.mu.Unlock()
	switch {
	case retErr != nil:
		return retErr
	case rerr != nil:
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if tail := strings.TrimSpace(stderr.String()); tail != "" {
			return fmt.Errorf("%w; its last output:\n%s", rerr, tail)
		}
		return rerr
	case !returned:
		return errdefs.Invalidf("the frontend exited without returning a result")
	}
	return nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
