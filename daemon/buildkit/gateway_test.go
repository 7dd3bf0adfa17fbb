package buildkit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	gatewayapi "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/pb"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
)

type nopEngine struct{}

func (nopEngine) Build(context.Context, engine.Request, session.Session, progress.Writer) (*engine.Result, error) {
	return &engine.Result{}, nil
}

func (nopEngine) Status(ctx context.Context, _ string, _ progress.Writer) error {
	<-ctx.Done()
	return context.Cause(ctx)
}

func newTestService(t *testing.T) *Service {
	t.Helper()
	s, err := New(Options{Engine: nopEngine{}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func buildCtx(ref string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("buildkit-controlapi-buildid", ref))
}

// A client-side build function (docker buildx) asks for the dockerfile
// frontend's result and returns it; the Control.Solve of the build gets
// the frontend options to build with.
func TestBridgeSolveReturn(t *testing.T) {
	t.Parallel()
	s := newTestService(t)
	ctx := buildCtx("b1")
	res, err := s.bridge.Solve(ctx, &gatewayapi.SolveRequest{Frontend: frontendDockerfile, FrontendOpt: map[string]string{"target": "test"}, AllowResultReturn: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.bridge.Warn(ctx, &gatewayapi.WarnRequest{Digest: "sha256:abc", Level: 1, Short: []byte("careful")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.bridge.Return(ctx, &gatewayapi.ReturnRequest{Result: res.Result}); err != nil {
		t.Fatal(err)
	}
	got, err := s.bridge.await(context.Background(), "b1")
	if err != nil || got == nil || got.job == nil || got.job.attrs["target"] != "test" {
		t.Fatalf("await = %+v, %v", got, err)
	}
	if len(got.warnings) != 1 || string(got.warnings[0].Short) != "careful" || got.warnings[0].Vertex != "sha256:abc" {
		t.Errorf("warnings = %v", got.warnings)
	}
	// An LLB definition and a frontend image are solved the same way.
	for _, req := range []*gatewayapi.SolveRequest{
		{Definition: &pb.Definition{Def: [][]byte{{1}}}, AllowResultReturn: true},
		{Frontend: frontendGateway, FrontendOpt: map[string]string{"source": "reg/fe:1"}, AllowResultReturn: true},
	} {
		id := fmt.Sprintf("b-%s-%d", req.Frontend, len(req.GetDefinition().GetDef()))
		ctx := buildCtx(id)
		res, err := s.bridge.Solve(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.bridge.Return(ctx, &gatewayapi.ReturnRequest{Result: res.Result}); err != nil {
			t.Fatal(err)
		}
		got, err := s.bridge.await(context.Background(), id)
		if err != nil || got.job == nil || (got.job.def == nil) != (req.Definition == nil) || got.job.frontend != req.Frontend || got.job.attrs["source"] != req.FrontendOpt["source"] {
			t.Errorf("%s: await = %+v, %v", id, got, err)
		}
	}
	// A second Return of the same build is refused.
	s.bridge.build("b2")
	ctx2 := buildCtx("b2")
	if _, err := s.bridge.Return(ctx2, &gatewayapi.ReturnRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.bridge.Return(ctx2, &gatewayapi.ReturnRequest{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second return: %v", err)
	}
	// An empty result (buildx reading the gateway's capabilities) exports
	// nothing.
	if got, err := s.bridge.await(context.Background(), "b2"); got == nil || got.job != nil || err != nil {
		t.Errorf("empty result: %+v, %v", got, err)
	}
}

func TestBridgeErrors(t *testing.T) {
	t.Parallel()
	s := newTestService(t)
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		req   *gatewayapi.SolveRequest
		class error
	}{
		{"no build id", context.Background(), &gatewayapi.SolveRequest{Frontend: frontendDockerfile, AllowResultReturn: true}, errdefs.ErrInvalidArgument},
		{"inputs to the built-in frontend", buildCtx("x"), &gatewayapi.SolveRequest{Frontend: frontendDockerfile, FrontendInputs: map[string]*pb.Definition{"a": {}}, AllowResultReturn: true}, errdefs.ErrUnimplemented},
		{"unknown frontend", buildCtx("x"), &gatewayapi.SolveRequest{Frontend: "make.v0", AllowResultReturn: true}, errdefs.ErrInvalidArgument},
		{"old protocol", buildCtx("x"), &gatewayapi.SolveRequest{Frontend: frontendDockerfile}, errdefs.ErrUnimplemented},
		{"bad option", buildCtx("x"), &gatewayapi.SolveRequest{Frontend: frontendDockerfile, FrontendOpt: map[string]string{"colour": "blue"}, AllowResultReturn: true}, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.bridge.Solve(tc.ctx, tc.req); !errors.Is(err, tc.class) {
				t.Errorf("err = %v, want class %v", err, tc.class)
			}
		})
	}

	// A returned error fails the build with it; a reference this build
	// did not make is refused.
	ctx := buildCtx("e1")
	if _, err := s.bridge.Return(ctx, &gatewayapi.ReturnRequest{Error: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: "build function failed"}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.bridge.await(context.Background(), "e1")
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "build function failed" {
		t.Errorf("returned error = %v", err)
	}
	ref := &gatewayapi.Result{Result: &gatewayapi.Result_Ref{Ref: &gatewayapi.Ref{Id: "kiln-nope"}}}
	if _, err := s.bridge.Return(buildCtx("e2"), &gatewayapi.ReturnRequest{Result: ref}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown reference: %v", err)
	}
	// A build whose client never returns ends with its request.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.bridge.await(cctx, "e3"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("await without a return: %v", err)
	}
}
