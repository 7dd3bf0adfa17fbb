package gateway

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	bkerrdefs "github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/grpcerrors"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/llb"
	"github.com/kiln-build/kiln/graph"
)

// result turns what the frontend returned into images: one per platform,
// each with its root vertex and the image config of the result's metadata
// (containerimage.config, per platform for several).
func (s *server) result() (*frontend.Result, error) {
	s.mu.Lock()
	res, warns := s.res, s.warnings
	s.mu.Unlock()
	if res == nil {
		return nil, errdefs.Invalidf("the frontend returned no result")
	}
	out := &frontend.Result{Warnings: warns}
	meta := res.Metadata
	switch x := res.Result.(type) {
	case *gwpb.Result_Ref, *gwpb.Result_RefDeprecated, nil:
		var r *gwpb.Ref
		switch x := x.(type) {
		case *gwpb.Result_Ref:
			r = x.Ref
		case *gwpb.Result_RefDeprecated:
			r = &gwpb.Ref{Id: x.RefDeprecated}
		}
		v, err := s.vertex(r)
		if err != nil {
			return nil, err
		}
		plat := s.req.BuildPlatform
		if len(s.req.Platforms) > 0 {
			plat = s.req.Platforms[0]
		}
		img, err := image(plat, v, meta[exptypes.ExporterImageConfigKey])
		if err != nil {
			return nil, err
		}
		out.Images = append(out.Images, img)
	case *gwpb.Result_Refs, *gwpb.Result_RefsDeprecated:
		refs := map[string]*gwpb.Ref{}
		if m, ok := x.(*gwpb.Result_Refs); ok {
			refs = m.Refs.GetRefs()
		} else {
			for k, id := range x.(*gwpb.Result_RefsDeprecated).RefsDeprecated.GetRefs() {
				refs[k] = &gwpb.Ref{Id: id}
			}
		}
		var ps exptypes.Platforms
		if err := json.Unmarshal(meta[exptypes.ExporterPlatformsKey], &ps); err != nil || len(ps.Platforms) == 0 {
			return nil, errdefs.Invalidf("the frontend returned %d results without the refs.platforms metadata that says their platforms", len(refs))
		}
		for _, p := range ps.Platforms {
			r, ok := refs[p.ID]
			if !ok {
				return nil, errdefs.Invalidf("the frontend returned no result for platform %s", p.ID)
			}
			v, err := s.vertex(r)
			if err != nil {
				return nil, err
			}
			cfg, ok := meta[exptypes.ExporterImageConfigKey+"/"+p.ID]
			if !ok {
				cfg = meta[exptypes.ExporterImageConfigKey]
			}
			img, err := image(platforms.Normalize(p.Platform), v, cfg)
			if err != nil {
				return nil, err
			}
			out.Images = append(out.Images, img)
		}
	default:
		return nil, errdefs.Invalidf("the frontend returned a result of unknown form %T", x)
	}
	return out, nil
}

// vertex returns the vertex of a returned ref (nil for an empty result).
func (s *server) vertex(r *gwpb.Ref) (*graph.Vertex, error) {
	if r == nil {
		return nil, nil
	}
	if r.Id != "" {
		s.mu.Lock()
		ref, ok := s.refs[r.Id]
		s.mu.Unlock()
		if !ok {
			return nil, errdefs.Invalidf("the frontend returned an unknown result %q", r.Id)
		}
		return ref.v, nil
	}
	if r.Def == nil {
		return nil, nil
	}
	res, err := llb.Convert(context.Background(), r.Def, s.convertOpts())
	if err != nil {
		return nil, err
	}
	return res.Root, nil
}

// image makes the image of one platform from its config JSON.
func image(plat ocispec.Platform, root *graph.Vertex, config []byte) (frontend.Image, error) {
	img := frontend.Image{Platform: plat, Root: root}
	if len(config) > 0 {
		var d imageconfig.DockerImage
		if err := json.Unmarshal(config, &d); err != nil {
			return img, errdefs.Invalidf("the frontend returned an image config that cannot be read: %v", err)
		}
		img.Config, img.ConfigExt = d.Image, d.Config.ConfigExt
		img.Config.Config = d.Config.ImageConfig
	}
	img.Config.Platform = plat
	img.Config.RootFS.Type = "layers"
	return img, nil
}

// exporterAttrs decodes a final solve's exporter attributes.
func exporterAttrs(b []byte) (map[string][]byte, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string][]byte
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errdefs.Invalidf("exporter attributes: %v", err)
	}
	return m, nil
}

// toStatus turns a Kiln error into the gRPC status a frontend sees.
func toStatus(err error) error {
	code := codes.Unknown
	for _, c := range []struct {
		class error
		code  codes.Code
	}{
		{errdefs.ErrNotFound, codes.NotFound}, {errdefs.ErrInvalidArgument, codes.InvalidArgument},
		{errdefs.ErrAlreadyExists, codes.AlreadyExists}, {errdefs.ErrPermissionDenied, codes.PermissionDenied},
		{errdefs.ErrUnauthenticated, codes.Unauthenticated}, {errdefs.ErrUnimplemented, codes.Unimplemented},
		{errdefs.ErrUnavailable, codes.Unavailable}, {errdefs.ErrCanceled, codes.Canceled},
		{errdefs.ErrFailedPrecondition, codes.FailedPrecondition}, {errdefs.ErrDeadlineExceeded, codes.DeadlineExceeded},
	} {
		if errors.Is(err, c.class) {
			code = c.code
			break
		}
	}
	return status.Error(code, err.Error())
}

// fromStatus turns the error a frontend returned into a Kiln error; a
// Dockerfile location BuildKit's frontends attach is kept.
func fromStatus(st *spb.Status) error {
	err := grpcerrors.FromGRPC(status.ErrorProto(st))
	msg := st.GetMessage()
	class := errdefs.ErrInvalidArgument
	switch codes.Code(st.GetCode()) {
	case codes.NotFound:
		class = errdefs.ErrNotFound
	case codes.Unimplemented:
		class = errdefs.ErrUnimplemented
	case codes.PermissionDenied:
		class = errdefs.ErrPermissionDenied
	case codes.Unauthenticated:
		class = errdefs.ErrUnauthenticated
	case codes.Canceled:
		class = errdefs.ErrCanceled
	case codes.Unavailable:
		class = errdefs.ErrUnavailable
	}
	out := errdefs.WithClass(class, errors.New(msg))
	for _, src := range bkerrdefs.Sources(err) {
		if src.Info == nil || len(src.Ranges) == 0 || src.Ranges[0].Start == nil {
			continue
		}
		r := src.Ranges[0]
		rng := errdefs.Range{Start: int(r.Start.Line), End: int(r.Start.Line)}
		if r.End != nil && int(r.End.Line) >= rng.Start {
			rng.End = int(r.End.Line)
		}
		return &errdefs.SourceError{File: src.Info.Filename, Range: rng, Err: out}
	}
	return out
}
