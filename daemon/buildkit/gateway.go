package buildkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"sync"

	controlapi "github.com/moby/buildkit/api/services/control"
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
// function that asks for a frontend's result (dockerfile.v0, or a frontend
// image with gateway.v0) or an LLB definition's, and returns it for
// export. Kiln solves lazily, as BuildKit does for an unevaluated result:
// Solve only checks the request and hands back a reference; the build
// runs, through the engine as any other, when the Control.Solve of the
// same build exports the returned reference. Reading files of a result
// is the gateway frontends' part (frontend/gateway), not served here.
type bridge struct {
	gatewayapi.UnimplementedLLBBridgeServer
	s *Service

	mu     sync.Mutex
	builds map[string]*gatewayBuild // by build ref
}

var _ gatewayapi.LLBBridgeServer = (*bridge)(nil)

// gatewayBuild is one build's gateway state.
type gatewayBuild struct {
	results  map[string]*solveJob // result ref id → what makes it
	warnings []*controlapi.VertexWarning
	ret      chan gatewayReturn // the client's Return
}

// gatewayReturn is what the client returned: the job making the result to
// export (nil: an empty result) or its error, and the warnings of its
// build function.
type gatewayReturn struct {
	job      *solveJob
	warnings []*controlapi.VertexWarning
	err      error
}

func (g *bridge) build(ref string) *gatewayBuild {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.builds == nil {
		g.builds = map[string]*gatewayBuild{}
	}
	b, ok := g.builds[ref]
	if !ok {
		b = &gatewayBuild{results: map[string]*solveJob{}, ret: make(chan gatewayReturn, 1)}
		g.builds[ref] = b
	}
	return b
}

func (g *bridge) buildOf(ctx context.Context) (*gatewayBuild, error) {
	ref := buildid.FromIncomingContext(ctx)
	if ref == "" {
		return nil, errdefs.Invalidf("gateway call without a build id (the %q metadata)", "buildkit-controlapi-buildid")
	}
	return g.build(ref), nil
}

// forget drops the gateway state of build ref.
func (g *bridge) forget(ref string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.builds, ref)
}

// await waits for the client's Return of build ref (Solve forgets the
// build when it ends).
func (g *bridge) await(ctx context.Context, ref string) (*gatewayReturn, error) {
	b := g.build(ref)
	select {
	case r := <-b.ret:
		if r.err != nil {
			return nil, r.err
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
	rec := &apitypes.WorkerRecord{ID: w.ID, Labels: w.Labels, Platforms: w.pbPlatforms()}
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
// proxies). What an LLB definition asks for that frontend/llb cannot
// convert is an error naming it, rather than a missing capability.
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

// Solve accepts a request for a frontend's result (dockerfile.v0, or a
// frontend image with gateway.v0) or an LLB definition's.
func (g *bridge) Solve(ctx context.Context, req *gatewayapi.SolveRequest) (*gatewayapi.SolveResponse, error) {
	b, err := g.buildOf(ctx)
	if err != nil {
		return nil, err
	}
	if !req.AllowResultReturn {
		return nil, unimplementedf("the gateway's old inline-return protocol: use a BuildKit client from v0.4 on")
	}
	job := &solveJob{frontend: req.Frontend, attrs: maps.Clone(req.FrontendOpt), inputs: req.FrontendInputs}
	if req.Definition != nil && len(req.Definition.Def) > 0 {
		job = &solveJob{def: req.Definition}
	}
	// The options are checked now, so that a mistake fails here.
	if _, err := job.request(&engine.Request{}); err != nil {
		return nil, err
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	ref := "kiln-" + hex.EncodeToString(id[:])
	g.mu.Lock()
	b.results[ref] = job
	g.mu.Unlock()
	return &gatewayapi.SolveResponse{Result: &gatewayapi.Result{
		Result:   &gatewayapi.Result_Ref{Ref: &gatewayapi.Ref{Id: ref}},
		Metadata: map[string][]byte{},
	}}, nil
}

// Return takes the client's result (or error) for export.
func (g *bridge) Return(ctx context.Context, req *gatewayapi.ReturnRequest) (*gatewayapi.ReturnResponse, error) {
	b, err := g.buildOf(ctx)
	if err != nil {
		return nil, err
	}
	var r gatewayReturn
	if e := req.Error; e != nil && codes.Code(e.Code) != codes.OK {
		r.err = status.ErrorProto(e)
	} else if r.job, err = g.resultJob(b, req.Result); err != nil {
		return nil, err
	}
	g.mu.Lock()
	r.warnings = b.warnings
	g.mu.Unlock()
	select {
	case b.ret <- r:
	default:
		return nil, errdefs.WithClass(errdefs.ErrAlreadyExists, errors.New("the build returned its result already"))
	}
	return &gatewayapi.ReturnResponse{}, nil
}

// resultJob finds what makes the returned reference.
func (g *bridge) resultJob(b *gatewayBuild, res *gatewayapi.Result) (*solveJob, error) {
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
		if job, ok := b.results[id]; ok {
			return job, nil
		}
		return nil, errdefs.NotFoundf("returned result %q was not made by this build's Solve", id)
	}
	return nil, nil
}

// Warn takes a warning of the client's build function: it goes out with
// the build's progress (Status) as the frontend's warnings do.
func (g *bridge) Warn(ctx context.Context, req *gatewayapi.WarnRequest) (*gatewayapi.WarnResponse, error) {
	b, err := g.buildOf(ctx)
	if err != nil {
		return nil, err
	}
	w := &controlapi.VertexWarning{Vertex: req.Digest, Level: req.Level, Short: req.Short, Detail: req.Detail, Url: req.Url, Info: req.Info, Ranges: req.Ranges}
	g.mu.Lock()
	b.warnings = append(b.warnings, w)
	g.mu.Unlock()
	return &gatewayapi.WarnResponse{}, nil
}

// Inputs reports the build's frontend inputs: a client-driven build has
// none.
func (g *bridge) Inputs(context.Context, *gatewayapi.InputsRequest) (*gatewayapi.InputsResponse, error) {
	return &gatewayapi.InputsResponse{Definitions: map[string]*pb.Definition{}}, nil
}
