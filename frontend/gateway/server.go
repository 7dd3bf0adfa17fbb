package gateway

import (
	"context"
	"fmt"
	"path"
	"strings"
	"sync"

	apitypes "github.com/moby/buildkit/api/types"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/apicaps"
	apicapspb "github.com/moby/buildkit/util/apicaps/pb"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	fstypes "github.com/tonistiigi/fsutil/types"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/llb"
	"github.com/kiln-build/kiln/graph"
)

// server is the LLBBridge one frontend container talks to.
type server struct {
	gwpb.UnimplementedLLBBridgeServer

	req  frontend.Request
	opts map[string]string

	mu       sync.Mutex
	refs     map[string]*ref
	nextID   int
	returned bool
	retErr   error
	res      *gwpb.Result
	warnings []frontend.Warning
	df       *graph.Vertex // the in-memory local://dockerfile
}

// ref is one result the frontend holds: a vertex, solved on first use.
type ref struct {
	v   *graph.Vertex
	def *pb.Definition

	mu     sync.Mutex
	solved frontend.Ref
}

func newServer(req frontend.Request, opts map[string]string) *server {
	return &server{req: req, opts: opts, refs: map[string]*ref{}}
}

// release frees every result solved for the frontend.
func (s *server) release(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.refs {
		r.mu.Lock()
		if r.solved != nil {
			_ = r.solved.Release(ctx)
			r.solved = nil
		}
		r.mu.Unlock()
	}
}

// add records a result and returns its id.
func (s *server) add(v *graph.Vertex, def *pb.Definition) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	id := fmt.Sprintf("kiln-ref-%d", s.nextID)
	s.refs[id] = &ref{v: v, def: def}
	return id
}

// solve returns the solved result of id.
func (s *server) solve(ctx context.Context, id string) (frontend.Ref, error) {
	s.mu.Lock()
	r, ok := s.refs[id]
	s.mu.Unlock()
	if !ok {
		return nil, errdefs.NotFoundf("no result %q", id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.solved == nil {
		sr, err := s.req.Bridge.Solve(ctx, r.v)
		if err != nil {
			return nil, err
		}
		r.solved = sr
	}
	return r.solved, nil
}

// convertOpts are the conversion options of the frontend's definitions.
func (s *server) convertOpts() llb.Options {
	return llb.Options{Local: s.local, ReadFile: func(ctx context.Context, v *graph.Vertex, p string) ([]byte, error) {
		r, err := s.req.Bridge.Solve(ctx, v)
		if err != nil {
			return nil, err
		}
		defer r.Release(context.WithoutCancel(ctx))
		return r.ReadFile(ctx, p, 0, -1)
	}}
}

// local serves the Dockerfile the request carries as local://dockerfile,
// and gives the build context the client's sync key.
func (s *server) local(src *graph.LocalSource) (*graph.Vertex, error) {
	key := s.opts["dockerfilekey"]
	if key == "" {
		key = "dockerfile"
	}
	if src.Name == key && s.req.Dockerfile != nil {
		return s.dockerfile(), nil
	}
	if src.Name == s.req.ContextName && s.req.SharedKeyHint != "" {
		src.SharedKeyHint = s.req.SharedKeyHint
	}
	return nil, nil
}

// dockerfile is the vertex of a filesystem holding the request's
// Dockerfile (and its ignore file) under the name the frontend reads.
func (s *server) dockerfile() *graph.Vertex {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.df != nil {
		return s.df
	}
	name := s.opts["filename"]
	if name == "" {
		name = "Dockerfile"
	}
	name = path.Base(name)
	acts := []graph.FileAction{{Mkfile: &graph.MkfileAction{Path: "/" + name, Mode: 0o644, Data: s.req.Dockerfile}}}
	if s.req.Dockerignore != nil {
		acts = append(acts, graph.FileAction{Mkfile: &graph.MkfileAction{Path: "/" + name + ".dockerignore", Mode: 0o644, Data: s.req.Dockerignore}})
	}
	s.df = graph.NewVertex(graph.Op{File: &graph.FileOp{Base: graph.NoInput, Actions: acts}},
		graph.Meta{Name: "[internal] load build definition from " + name})
	return s.df
}

// Ping implements gwpb.LLBBridgeServer: the capabilities Kiln supports.
func (s *server) Ping(context.Context, *gwpb.PingRequest) (*gwpb.PongResponse, error) {
	p := s.req.BuildPlatform
	return &gwpb.PongResponse{
		FrontendAPICaps: frontendCaps(),
		LLBCaps:         llb.Caps(),
		Workers: []*apitypes.WorkerRecord{{
			ID:        "kiln",
			Platforms: []*pb.Platform{{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}},
		}},
	}, nil
}

// unsupportedGateway are the gateway capabilities Kiln does not serve.
var unsupportedGateway = map[apicaps.CapID]bool{
	gwpb.CapGatewayExec:                           true,
	gwpb.CapGatewayExecExtraHosts:                 true,
	gwpb.CapGatewayExecSecretEnv:                  true,
	gwpb.CapGatewayExecSignals:                    true,
	gwpb.CapGatewayExecFilesystem:                 true,
	gwpb.CapSourceMetaResolver:                    true,
	gwpb.CapSourceMetaResolverImageAttestations:   true,
	gwpb.CapSourceMetaResolverHTTPChecksumRequest: true,
	gwpb.CapAttestations:                          true,
	gwpb.CapImportCaches:                          true,
}

func frontendCaps() []*apicapspb.APICap {
	all := gwpb.Caps.All()
	for _, c := range all {
		if unsupportedGateway[apicaps.CapID(c.ID)] {
			c.Enabled = false
			c.DisabledReason = "unsupported"
			c.DisabledReasonMsg = "not supported by Kiln"
		}
	}
	return all
}

// ResolveImageConfig implements gwpb.LLBBridgeServer.
func (s *server) ResolveImageConfig(ctx context.Context, r *gwpb.ResolveImageConfigRequest) (*gwpb.ResolveImageConfigResponse, error) {
	p := s.req.BuildPlatform
	if rp := r.Platform; rp != nil && rp.OS != "" {
		p = ocispec.Platform{OS: rp.OS, Architecture: rp.Architecture, Variant: rp.Variant, OSVersion: rp.OSVersion}
	}
	res, err := s.req.Resolver.ResolveImageConfig(ctx, r.Ref, p)
	if err != nil {
		return nil, toStatus(err)
	}
	name := res.Ref
	if !strings.Contains(r.Ref, "@") {
		name, _, _ = strings.Cut(name, "@") // as asked: a tag, not pinned
	}
	return &gwpb.ResolveImageConfigResponse{Ref: name, Digest: res.Digest.String(), Config: res.Config}, nil
}

// Solve implements gwpb.LLBBridgeServer: an LLB definition becomes a
// result, solved when it is read or evaluated.
func (s *server) Solve(ctx context.Context, r *gwpb.SolveRequest) (*gwpb.SolveResponse, error) {
	if r.Frontend != "" {
		return nil, toStatus(errdefs.WithClass(errdefs.ErrUnimplemented, fmt.Errorf("a frontend solving with frontend %q is not supported by Kiln (only LLB definitions)", r.Frontend)))
	}
	if len(r.SourcePolicies) > 0 {
		return nil, toStatus(errdefs.WithClass(errdefs.ErrUnimplemented, fmt.Errorf("source policies are not supported by Kiln")))
	}
	res, err := llb.Convert(ctx, r.Definition, s.convertOpts())
	if err != nil {
		return nil, toStatus(err)
	}
	id := s.add(res.Root, r.Definition)
	if r.Evaluate {
		if _, err := s.solve(ctx, id); err != nil {
			return nil, toStatus(err)
		}
	}
	if r.Final {
		// The protocol before Return: the final solve carries the
		// result's metadata.
		meta, err := exporterAttrs(r.ExporterAttr)
		if err != nil {
			return nil, toStatus(err)
		}
		s.setResult(&gwpb.Result{Result: &gwpb.Result_Ref{Ref: &gwpb.Ref{Id: id}}, Metadata: meta}, nil)
	}
	resp := &gwpb.SolveResponse{}
	if r.AllowResultReturn {
		resp.Result = &gwpb.Result{Result: &gwpb.Result_Ref{Ref: &gwpb.Ref{Id: id, Def: r.Definition}}}
	} else {
		resp.Ref = id
	}
	return resp, nil
}

// Evaluate implements gwpb.LLBBridgeServer.
func (s *server) Evaluate(ctx context.Context, r *gwpb.EvaluateRequest) (*gwpb.EvaluateResponse, error) {
	if _, err := s.solve(ctx, r.Ref); err != nil {
		return nil, toStatus(err)
	}
	return &gwpb.EvaluateResponse{}, nil
}

// ReadFile implements gwpb.LLBBridgeServer.
func (s *server) ReadFile(ctx context.Context, r *gwpb.ReadFileRequest) (*gwpb.ReadFileResponse, error) {
	res, err := s.solve(ctx, r.Ref)
	if err != nil {
		return nil, toStatus(err)
	}
	off, limit := int64(0), int64(-1)
	if r.Range != nil {
		off, limit = r.Range.Offset, r.Range.Length
	}
	data, err := res.ReadFile(ctx, r.FilePath, off, limit)
	if err != nil {
		return nil, toStatus(err)
	}
	return &gwpb.ReadFileResponse{Data: data}, nil
}

// ReadDir implements gwpb.LLBBridgeServer: the entries of a directory
// whose names match the include pattern, if one is given.
func (s *server) ReadDir(ctx context.Context, r *gwpb.ReadDirRequest) (*gwpb.ReadDirResponse, error) {
	res, err := s.solve(ctx, r.Ref)
	if err != nil {
		return nil, toStatus(err)
	}
	ents, err := res.ReadDir(ctx, r.DirPath)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &gwpb.ReadDirResponse{}
	for _, e := range ents {
		if r.IncludePattern != "" {
			if ok, err := path.Match(r.IncludePattern, e.Name); err != nil {
				return nil, toStatus(errdefs.Invalidf("include pattern %q: %v", r.IncludePattern, err))
			} else if !ok {
				continue
			}
		}
		out.Entries = append(out.Entries, stat(e))
	}
	return out, nil
}

// StatFile implements gwpb.LLBBridgeServer.
func (s *server) StatFile(ctx context.Context, r *gwpb.StatFileRequest) (*gwpb.StatFileResponse, error) {
	res, err := s.solve(ctx, r.Ref)
	if err != nil {
		return nil, toStatus(err)
	}
	fi, err := res.StatFile(ctx, r.Path)
	if err != nil {
		return nil, toStatus(err)
	}
	return &gwpb.StatFileResponse{Stat: stat(fi)}, nil
}

func stat(fi frontend.FileInfo) *fstypes.Stat {
	return &fstypes.Stat{
		Path: fi.Name, Mode: uint32(fi.Mode), Uid: fi.UID, Gid: fi.GID, Size: fi.Size,
		ModTime: fi.ModTime.UnixNano(), Linkname: fi.Linkname, Devmajor: int64(fi.Devmajor), Devminor: int64(fi.Devminor),
	}
}

// Inputs implements gwpb.LLBBridgeServer.
func (s *server) Inputs(context.Context, *gwpb.InputsRequest) (*gwpb.InputsResponse, error) {
	return &gwpb.InputsResponse{Definitions: s.req.Inputs}, nil
}

// Warn implements gwpb.LLBBridgeServer: warnings join the build's.
func (s *server) Warn(_ context.Context, r *gwpb.WarnRequest) (*gwpb.WarnResponse, error) {
	w := frontend.Warning{Message: strings.TrimSpace(string(r.Short))}
	if r.Info != nil {
		w.File = r.Info.Filename
	}
	if len(r.Ranges) > 0 && r.Ranges[0].Start != nil {
		w.Range.Start = int(r.Ranges[0].Start.Line)
		w.Range.End = w.Range.Start
		if e := r.Ranges[0].End; e != nil && int(e.Line) >= w.Range.Start {
			w.Range.End = int(e.Line)
		}
	}
	s.mu.Lock()
	s.warnings = append(s.warnings, w)
	s.mu.Unlock()
	return &gwpb.WarnResponse{}, nil
}

// Return implements gwpb.LLBBridgeServer: the frontend's result or error.
func (s *server) Return(_ context.Context, r *gwpb.ReturnRequest) (*gwpb.ReturnResponse, error) {
	var err error
	if r.Error != nil && r.Error.Code != 0 {
		err = fromStatus(r.Error)
	}
	s.setResult(r.Result, err)
	return &gwpb.ReturnResponse{}, nil
}

func (s *server) setResult(res *gwpb.Result, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.returned, s.res, s.retErr = true, res, err
}
