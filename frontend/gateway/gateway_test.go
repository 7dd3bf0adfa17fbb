package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bkllb "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/gateway/grpcclient"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	bkerrdefs "github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/graph"
)

func TestOpts(t *testing.T) {
	t.Parallel()
	req := frontend.Request{
		DockerfileName: "sub/app.Dockerfile", Target: "final",
		BuildArgs: map[string]string{"A": "1"}, Labels: map[string]string{"l": "v"},
		Platforms:     []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}},
		NamedContexts: map[string]frontend.NamedContext{"lib": {Local: "context:lib"}, "base": {Image: "busybox:1"}},
		NoCacheFilter: []string{"build"},
		ExtraHosts:    []sandbox.HostIP{{Host: "db", IP: netip.MustParseAddr("10.0.0.1")}},
		Network:       "none",
		Opts:          map[string]string{"target": "overridden", "source": "img"},
	}
	want := map[string]string{
		"filename": "app.Dockerfile", "target": "overridden", "source": "img",
		"build-arg:A": "1", "label:l": "v", "platform": "linux/amd64,linux/arm64/v8",
		"context:lib": "local:context:lib", "context:base": "docker-image://busybox:1",
		"no-cache": "build", "add-hosts": "db=10.0.0.1", "force-network-mode": "none",
	}
	if d := cmp.Diff(want, Opts(req)); d != "" {
		t.Errorf("Opts (-want +got):\n%s", d)
	}
	if got := Opts(frontend.Request{NoCache: true}); got["no-cache"] != "" || len(got) != 1 {
		t.Errorf("--no-cache: %v", got)
	}
}

func TestCheckCaps(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"moby.buildkit.frontend.caps": "moby.buildkit.frontend.inputs, moby.buildkit.frontend.subrequests"}
	if err := checkCaps(labels, map[string]string{"frontend.caps": "moby.buildkit.frontend.inputs"}); err != nil {
		t.Errorf("declared capability: %v", err)
	}
	err := checkCaps(labels, map[string]string{"source": "img", "frontend.caps": "moby.buildkit.frontend.contexts"})
	if !errors.Is(err, errdefs.ErrUnimplemented) || !strings.Contains(err.Error(), "moby.buildkit.frontend.contexts") {
		t.Errorf("missing capability: %v", err)
	}
}

// fakeBridge solves file ops made of mkfile actions on an empty base into
// in-memory filesystems; anything else is empty.
type fakeBridge struct {
	mu     sync.Mutex
	solved int
}

func (b *fakeBridge) Solve(_ context.Context, v *graph.Vertex) (frontend.Ref, error) {
	b.mu.Lock()
	b.solved++
	b.mu.Unlock()
	r := memRef{}
	if v != nil && v.Op.File != nil {
		for _, a := range v.Op.File.Actions {
			if a.Mkfile != nil {
				r[a.Mkfile.Path] = a.Mkfile.Data
			}
		}
	}
	return r, nil
}

func (b *fakeBridge) Run(context.Context, frontend.Ref, frontend.Process) error {
	return errors.New("no containers here")
}

type memRef map[string][]byte

func (m memRef) ReadFile(_ context.Context, p string, off, limit int64) ([]byte, error) {
	b, ok := m[p]
	if !ok {
		return nil, errdefs.NotFoundf("%s: no such file or directory", p)
	}
	b = b[min(off, int64(len(b))):]
	if limit >= 0 && limit < int64(len(b)) {
		b = b[:limit]
	}
	return b, nil
}

func (m memRef) ReadDir(_ context.Context, p string) ([]frontend.FileInfo, error) {
	var out []frontend.FileInfo
	for k, v := range m {
		if strings.HasPrefix(k, strings.TrimSuffix(p, "/")+"/") {
			out = append(out, frontend.FileInfo{Name: strings.TrimPrefix(k, strings.TrimSuffix(p, "/")+"/"), Mode: 0o644, Size: int64(len(v))})
		}
	}
	return out, nil
}

func (m memRef) StatFile(_ context.Context, p string) (frontend.FileInfo, error) {
	b, ok := m[p]
	if !ok {
		return frontend.FileInfo{}, errdefs.NotFoundf("%s", p)
	}
	return frontend.FileInfo{Name: p, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(1, 0)}, nil
}

func (memRef) Release(context.Context) error { return nil }

type fakeResolver struct{}

func (fakeResolver) ResolveImageConfig(_ context.Context, ref string, p ocispec.Platform) (imageconfig.Resolved, error) {
	if strings.Contains(ref, "missing") {
		return imageconfig.Resolved{}, errdefs.NotFoundf("%s: not found", ref)
	}
	cfg, _ := json.Marshal(ocispec.Image{Platform: p, Config: ocispec.ImageConfig{Env: []string{"FROM_BASE=1"}}})
	d := digest.FromString(ref)
	return imageconfig.Resolved{Ref: "docker.io/library/" + ref + "@" + d.String(), Digest: d, Config: cfg}, nil
}

// serve runs the LLBBridge of req in process and BuildKit's own gateway
// client against it, as a frontend container would.
func serve(t *testing.T, req frontend.Request, build client.BuildFunc) *server {
	t.Helper()
	ctx := context.Background()
	opts := Opts(req)
	s := newServer(req, opts)
	srvConn, cliConn := net.Pipe()
	gs := grpc.NewServer()
	gwpb.RegisterLLBBridgeServer(gs, s)
	lis := newConnListener(srvConn)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); lis.Close() })
	cc, err := grpc.NewClient("passthrough:///frontend", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return cliConn, nil }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	gc, err := grpcclient.New(ctx, opts, "session", "kiln-test", gwpb.NewLLBBridgeClient(cc), nil)
	if err != nil {
		t.Fatalf("grpcclient.New: %v", err)
	}
	_ = gc.Run(ctx, build)
	return s
}

// BuildKit's gateway client reads the Dockerfile Kiln serves, resolves an
// image, warns and returns a result with an image config.
func TestServeBuildKitClient(t *testing.T) {
	t.Parallel()
	fb := &fakeBridge{}
	extra, err := bkllb.Image("busybox").Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	req := frontend.Request{
		Dockerfile: []byte("FROM busybox\n"), DockerfileName: "Dockerfile", Dockerignore: []byte("*.log\n"),
		BuildPlatform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Bridge:        fb, Resolver: fakeResolver{},
		Inputs: map[string]*pb.Definition{"extra": extra.ToPB()},
	}
	s := serve(t, req, func(ctx context.Context, c client.Client) (*client.Result, error) {
		def, err := bkllb.Local("dockerfile", bkllb.FollowPaths([]string{"Dockerfile"})).Marshal(ctx)
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
		df, err := ref.ReadFile(ctx, client.ReadRequest{Filename: "/Dockerfile"})
		if err != nil || string(df) != "FROM busybox\n" {
			return nil, fmt.Errorf("Dockerfile = %q, %v", df, err)
		}
		ig, err := ref.ReadFile(ctx, client.ReadRequest{Filename: "/Dockerfile.dockerignore", Range: &client.FileRange{Offset: 1, Length: 3}})
		if err != nil || string(ig) != ".lo" {
			return nil, fmt.Errorf("ignore file range = %q, %v", ig, err)
		}
		if _, err := ref.ReadFile(ctx, client.ReadRequest{Filename: "/nope"}); err == nil {
			return nil, errors.New("reading a missing file worked")
		}
		ents, err := ref.ReadDir(ctx, client.ReadDirRequest{Path: "/", IncludePattern: "*.dockerignore"})
		if err != nil || len(ents) != 1 || ents[0].Path != "Dockerfile.dockerignore" {
			return nil, fmt.Errorf("ReadDir = %v, %v", ents, err)
		}
		st, err := ref.StatFile(ctx, client.StatRequest{Path: "/Dockerfile"})
		if err != nil || st.Size != int64(len("FROM busybox\n")) {
			return nil, fmt.Errorf("StatFile = %v, %v", st, err)
		}
		name, dgst, cfg, err := c.ResolveImageConfig(ctx, "busybox:1", sourceOpt())
		if err != nil || name != "docker.io/library/busybox:1" || dgst == "" || !strings.Contains(string(cfg), "FROM_BASE") {
			return nil, fmt.Errorf("ResolveImageConfig = %q %q %s, %v", name, dgst, cfg, err)
		}
		if ins, err := c.Inputs(ctx); err != nil || len(ins) != 1 {
			return nil, fmt.Errorf("Inputs = %v, %v", ins, err)
		}
		if err := c.Warn(ctx, "", "look out", client.WarnOpts{SourceInfo: &pb.SourceInfo{Filename: "Dockerfile"}, Range: []*pb.Range{{Start: &pb.Position{Line: 1}}}}); err != nil {
			return nil, err
		}
		out := client.NewResult()
		out.SetRef(ref)
		out.AddMeta("containerimage.config", []byte(`{"config":{"Cmd":["hello"]},"history":[{"created_by":"x"}]}`))
		return out, nil
	})
	s.mu.Lock()
	retErr := s.retErr
	s.mu.Unlock()
	if retErr != nil {
		t.Fatalf("the frontend failed: %v", retErr)
	}
	res, err := s.result()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 1 || res.Images[0].Root == nil || res.Images[0].Root.Op.File == nil {
		t.Fatalf("result = %+v, want one image on the in-memory Dockerfile", res)
	}
	img := res.Images[0]
	if d := cmp.Diff([]string{"hello"}, img.Config.Config.Cmd); d != "" || img.Config.OS != "linux" || len(img.Config.History) != 1 {
		t.Errorf("config = %+v", img.Config)
	}
	if len(res.Warnings) != 1 || res.Warnings[0].Message != "look out" || res.Warnings[0].Range.Start != 1 {
		t.Errorf("warnings = %+v", res.Warnings)
	}
	fb.mu.Lock()
	solved := fb.solved
	fb.mu.Unlock()
	if solved != 1 {
		t.Errorf("the Dockerfile was solved %d times, want once", solved)
	}
}

func sourceOpt() sourceresolver.Opt { return sourceresolver.Opt{} }

// A frontend error keeps its class and its Dockerfile location.
func TestServeFrontendError(t *testing.T) {
	t.Parallel()
	req := frontend.Request{BuildPlatform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Bridge: &fakeBridge{}, Resolver: fakeResolver{}}
	s := serve(t, req, func(ctx context.Context, c client.Client) (*client.Result, error) {
		src := &bkerrdefs.Source{Info: &pb.SourceInfo{Filename: "Dockerfile"}, Ranges: []*pb.Range{{Start: &pb.Position{Line: 7}, End: &pb.Position{Line: 8}}}}
		return nil, bkerrdefs.WithSource(errors.New("unknown instruction: FROB"), src)
	})
	s.mu.Lock()
	err := s.retErr
	s.mu.Unlock()
	var se *errdefs.SourceError
	if !errors.As(err, &se) || se.File != "Dockerfile" || se.Range != (errdefs.Range{Start: 7, End: 8}) || !strings.Contains(err.Error(), "unknown instruction: FROB") {
		t.Fatalf("err = %v, want a SourceError at Dockerfile:7-8", err)
	}
	if _, rerr := s.result(); rerr == nil {
		t.Error("a failed frontend has a result")
	}
}

// Conversion errors reach the frontend as gRPC errors with their class.
func TestServeSolveErrors(t *testing.T) {
	t.Parallel()
	req := frontend.Request{BuildPlatform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Bridge: &fakeBridge{}, Resolver: fakeResolver{}}
	var got error
	serve(t, req, func(ctx context.Context, c client.Client) (*client.Result, error) {
		def, err := bkllb.Image("busybox").Run(bkllb.Shlex("true"), bkllb.WithCgroupParent("/x")).Root().Marshal(ctx)
		if err != nil {
			return nil, err
		}
		_, got = c.Solve(ctx, client.SolveRequest{Definition: def.ToPB(), Evaluate: true})
		if _, _, _, err := c.ResolveImageConfig(ctx, "missing:1", sourceOpt()); err == nil || !strings.Contains(err.Error(), "not found") {
			return nil, fmt.Errorf("missing image: %v", err)
		}
		return nil, nil
	})
	if got == nil || !strings.Contains(got.Error(), "cgroupParent is not supported") {
		t.Errorf("Solve: %v", got)
	}
}
