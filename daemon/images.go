package daemon

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/imagestore"
)

var (
	_ ImageLister   = (*BuildBackend)(nil)
	_ HistoryLister = (*BuildBackend)(nil)
)

// ListImages implements ImageLister.
func (b *BuildBackend) ListImages(ctx context.Context, _ *api.ListImagesRequest) (*api.ListImagesResponse, error) {
	if b.parts == nil {
		return nil, unimplemented("ListImages")
	}
	imgs, err := b.parts.Images.List(ctx)
	if err != nil {
		return nil, err
	}
	resp := &api.ListImagesResponse{}
	for _, img := range imgs {
		plats, size := summarize(ctx, b.parts.Content, img.Target)
		resp.Images = append(resp.Images, &api.Image{
			Name: imagestore.FamiliarName(img.Name), Digest: img.Target.Digest.String(),
			MediaType: img.Target.MediaType, Platforms: plats, Size: size,
			Created: timestamppb.New(img.Created),
		})
	}
	return resp, nil
}

// summarize returns the platforms of an image or index and the size of its
// blobs (a blob shared by two platforms counts once).
func summarize(ctx context.Context, cs content.Store, target ocispec.Descriptor) ([]string, int64) {
	seen := map[string]bool{}
	var plats []string
	var size int64
	add := func(d ocispec.Descriptor) {
		if !seen[d.Digest.String()] {
			seen[d.Digest.String()] = true
			size += d.Size
		}
	}
	var visit func(d ocispec.Descriptor)
	visit = func(d ocispec.Descriptor) {
		add(d)
		b, err := content.ReadBlob(ctx, cs, d)
		if err != nil {
			return
		}
		var m struct {
			Manifests []ocispec.Descriptor `json:"manifests"`
			Config    ocispec.Descriptor   `json:"config"`
			Layers    []ocispec.Descriptor `json:"layers"`
		}
		if json.Unmarshal(b, &m) != nil {
			return
		}
		for _, c := range m.Manifests {
			visit(c)
		}
		if m.Config.Digest == "" {
			return
		}
		add(m.Config)
		for _, l := range m.Layers {
			add(l)
		}
		if cb, err := content.ReadBlob(ctx, cs, m.Config); err == nil {
			var c ocispec.Image
			if json.Unmarshal(cb, &c) == nil && c.OS != "" {
				plats = append(plats, platforms.Format(c.Platform))
			}
		}
	}
	visit(target)
	return plats, size
}

// History implements HistoryLister.
func (b *BuildBackend) History(ctx context.Context, req *api.HistoryRequest) (*api.HistoryResponse, error) {
	if b.parts == nil || b.parts.History == nil {
		return nil, unimplemented("History")
	}
	recs, err := b.parts.History.List(ctx, req.GetRef(), int(req.GetLimit()))
	if err != nil {
		return nil, fmt.Errorf("build history: %w", err)
	}
	resp := &api.HistoryResponse{}
	for _, r := range recs {
		br := &api.BuildRecord{
			Ref: r.Ref, Created: timestamppb.New(r.Created), Completed: timestamppb.New(r.Completed),
			Status: r.Status, Error: r.Error, Steps: int32(r.Steps), Cached: int32(r.Cached),
			Target: r.Target, ExporterResponse: r.ExporterResponse, DockerfileName: r.DockerfileName,
			CriticalPathNs: int64(r.Critical),
		}
		critical := map[digest.Digest]bool{}
		for _, d := range r.CriticalPath {
			critical[d] = true
		}
		for _, s := range r.StepDetails {
			br.StepDetails = append(br.StepDetails, &api.BuildStep{
				Digest: s.Digest.String(), Name: s.Name, DurationNs: int64(s.Duration),
				Cached: s.Cached, Failed: s.Failed, Usage: stepUsage(s.Usage), Critical: critical[s.Digest],
			})
		}
		resp.Records = append(resp.Records, br)
	}
	return resp, nil
}
