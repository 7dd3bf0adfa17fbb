package buildkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"sync"

	apitypes "github.com/moby/buildkit/api/types"
	"github.com/moby/buildkit/client/buildid"
	gatewayapi "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/pb"
	apicapspb "github.com/moby/buildkit/util/apicaps/pb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine"
)

// bridge is the part of BuildKit's gateway API (LLBBridge) that a client
// driving a build from its own side uses: docker buildx runs a build
// function that asks for the dockerfile.v0 frontend's result and returns
// it for export. Kiln solves lazily, as BuildKit does for an unevaluated
// result: Solve only checks the options and hands back a reference; the
// build runs when the Control.Solve of the same build exports the
// returned reference. Frontend images, LLB definitions and reading files
// of a result are the gateway frontends' part (not served here).
type bridge struct {
	gatewayapi.UnimplementedLLBBridgeServer
	s *Service

	mu     sync.Mutex
	builds map[string]*gatewayBuild // by build ref
}

var _ gatewayapi.LLBBridgeServer = (*bridge)(nil)

// gatewayBuild is one build's gateway state.
type gatewayBuild struct {
	results map[string]map[string]string // result ref id → frontend attributes
	ret     chan gatewayReturn           // the client's Return
}

// gatewayReturn is what the client returned: the frontend attributes of
// the result to export (nil: an empty result) or its error.
type gatewayReturn struct {
	attrs map[string]string
	err   error
}

func (g *bridge) build(ref string) *gatewayBuild {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.builds == nil {
		g.builds = map[string]*gatewayBuild{}
	}
	b, ok := g.builds[ref]
	if !ok {
		b = &gatewayBuild{results: map[string]map[string]string{}, ret: make(chan gatewayReturn, 1)}
		g.builds[ref] = b
	}
	return b
}

func (g *bridge) buildOf(ctx context.Context) (string, *gatewayBuild, error) {
	ref := buildid.FromIncomingContext(ctx)
	if ref == "" {
		return "", nil, errdefs.Invalidf("gateway call without a build id (the %q metadata)", "buildkit-controlapi-buildid")
	}
	return ref, g.build(ref), nil
}

// await waits for the client's Return of build ref and forgets the build.
func (g *bridge) await(ctx context.Context, ref string) (*gatewayReturn, error) {
	b := g.build(ref)
	defer func() {
		g.mu.Lock()
		delete(g.builds, ref)
		g.mu.Unlock()
	}()
	select {
	case r := <-b.ret:
		if r.err != nil {
			return nil, r.err
		}
		if r.attrs == nil {
			return nil, nil
		}
		return &r, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// Ping tells the client what this gateway does.
func (g *bridge) Ping(context.Context, *gatewayapi.PingRequest) (*gatewayapi.PongResponse, error) {
	caps := func(ids ...string) []*apicapspb.APICap {
		out := make([]*apicapspb.APICap, len(ids))
		for i, id := range ids {
			out[i] = &apicapspb.APICap{ID: id, Enabled: true}
		}
		return out
	}
	w := g.s.o.Worker
	rec := &apitypes.WorkerRecord{ID: w.ID, Labels: w.Labels}
	for _, p := range w.Platforms {
		rec.Platforms = append(rec.Platforms, &pb.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
	}
	return &gatewayapi.PongResponse{
		FrontendAPICaps: caps(
			string(gatewayapi.CapSolveBase), string(gatewayapi.CapReturnResult), string(gatewayapi.CapReturnMap),
			string(gatewayapi.CapProtoRefArray), string(gatewayapi.CapGatewayWarnings),
		),
		LLBCaps: llbCaps(),
		Workers: []*apitypes.WorkerRecord{rec},
	}, nil
}

// llbCaps are BuildKit's LLB capabilities minus those that would make a
// client add what Kiln does not do (attestations, source policies, network
// proxies). Kiln takes no LLB definition yet (the gateway's Solve says so);
// listing the op capabilities lets a client send one and hear that, rather
// than fail on a missing capability.
func llbCaps() []*apicapspb.APICap {
	deny := map[string]bool{
		string(pb.CapAttestations): true, string(pb.CapSourcePolicySession): true,
		string(pb.CapExecMetaNetworkProxy): true, "cache.gha": true, "cache.s3": true,
	}
	var out []*apicapspb.APICap
	for _, c := range pb.Caps.All() {
		if !deny[c.ID] {
			out = append(out, c)
		}
	}
	return out
}

// Solve accepts a request for the dockerfile.v0 frontend's result.
func (g *bridge) Solve(ctx context.Context, req *gatewayapi.SolveRequest) (*gatewayapi.SolveResponse, error) {
	_, b, err := g.buildOf(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case req.Definition != nil && len(req.Definition.Def) > 0:
		return nil, unimplementedf("LLB definitions sent through the gateway: kilnd builds Dockerfiles (the dockerfile.v0 frontend)")
	case len(req.FrontendInputs) > 0:
		return nil, unimplementedf("frontend inputs (LLB states given to the frontend)")
	case req.Frontend == frontendGateway:
		return nil, unimplementedf("gateway frontend images (gateway.v0, source=%s)", req.FrontendOpt["source"])
	case req.Frontend != frontendDockerfile:
		return nil, errdefs.Invalidf("unknown frontend %q: kilnd has the built-in %s", req.Frontend, frontendDockerfile)
	case !req.AllowResultReturn:
		return nil, unimplementedf("the gateway's old inline-return protocol: use a BuildKit client from v0.4 on")
	}
	// The options are checked now, so that a mistake fails here.
	if _, err := parseDockerfileAttrs(req.FrontendOpt, &engine.Request{}); err != nil {
		return nil, err
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	ref := "kiln-" + hex.EncodeToString(id[:])
	g.mu.Lock()
	b.results[ref] = maps.Clone(req.FrontendOpt)
	if b.results[ref] == nil {
		b.results[ref] = map[string]string{}
	}
	g.mu.Unlock()
	return &gatewayapi.SolveResponse{Result: &gatewayapi.Result{
		Result:   &gatewayapi.Result_Ref{Ref: &gatewayapi.Ref{Id: ref}},
		Metadata: map[string][]byte{},
	}}, nil
}

// Return takes the client's result (or error) for export.
func (g *bridge) Return(ctx context.Context, req *gatewayapi.ReturnRequest) (*gatewayapi.ReturnResponse, error) {
	_, b, err := g.buildOf(ctx)
	if err != nil {
		return nil, err
	}
	var r gatewayReturn
	if e := req.Error; e != nil && codes.Code(e.Code) != codes.OK {
		r.err = status.ErrorProto(e)
	} else if r.attrs, err = g.resultAttrs(b, req.Result); err != nil {
		return nil, err
	}
	select {
	case b.ret <- r:
	default:
		return nil, errdefs.WithClass(errdefs.ErrAlreadyExists, errors.New("the build returned its result already"))
	}
	return &gatewayapi.ReturnResponse{}, nil
}

// resultAttrs finds the frontend attributes of the returned reference.
func (g *bridge) resultAttrs(b *gatewayBuild, res *gatewayapi.Result) (map[string]string, error) {
	ids := map[string]bool{}
	switch r := res.GetResult().(type) {
	case *gatewayapi.Result_Ref:
		ids[r.Ref.GetId()] = true
	case *gatewayapi.Result_RefDeprecated:
		ids[r.RefDeprecated] = true
	case *gatewayapi.Result_Refs:
		for _, ref := range r.Refs.GetRefs() {
			ids[ref.GetId()] = true
		}
	case *gatewayapi.Result_RefsDeprecated:
		for _, id := range r.RefsDeprecated.GetRefs() {
			ids[id] = true
		}
	}
	delete(ids, "")
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > 1 {
		return nil, unimplementedf("returning the results of several frontend solves at once")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for id := range ids {
		if attrs, ok := b.results[id]; ok {
			return attrs, nil
		}
		return nil, errdefs.NotFoundf("returned result %q was not made by this build's Solve", id)
	}
	return nil, nil
}

// Warn takes a warning of the client's build function. The build's
// progress is the engine's, which starts with the export: the warning goes
// to kilnd's log.
func (g *bridge) Warn(ctx context.Context, req *gatewayapi.WarnRequest) (*gatewayapi.WarnResponse, error) {
	ref, _, err := g.buildOf(ctx)
	if err != nil {
		return nil, err
	}
	g.s.o.Logger.Warn("build function warning", "ref", ref, "warning", string(req.Short))
	return &gatewayapi.WarnResponse{}, nil
}

// Inputs reports the build's frontend inputs: a client-driven build has
// none.
func (g *bridge) Inputs(context.Context, *gatewayapi.InputsRequest) (*gatewayapi.InputsResponse, error) {
	return &gatewayapi.InputsResponse{Definitions: map[string]*pb.Definition{}}, nil
}
