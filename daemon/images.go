package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/authn"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine/images"
	"github.com/kiln-build/kiln/registry"
)

// saveChunk is the size of the SaveImage stream's messages.
const saveChunk = 256 << 10

func apiImage(img images.Image) *api.Image {
	return &api.Image{
		Name: img.Name, Digest: img.Digest.String(), MediaType: img.MediaType,
		Platforms: img.Platforms, Size: img.Size, Created: timestamppb.New(img.Created),
	}
}

func (v *service) ListImages(ctx context.Context, _ *api.ListImagesRequest) (*api.ListImagesResponse, error) {
	if v.s.svc.Images == nil {
		return nil, unimplemented("ListImages")
	}
	imgs, err := v.s.svc.Images.List(ctx)
	if err != nil {
		return nil, err
	}
	resp := &api.ListImagesResponse{}
	for _, img := range imgs {
		resp.Images = append(resp.Images, apiImage(img))
	}
	return resp, nil
}

func (v *service) RemoveImages(ctx context.Context, req *api.RemoveImagesRequest) (*api.RemoveImagesResponse, error) {
	if v.s.svc.Images == nil {
		return nil, unimplemented("RemoveImages")
	}
	res, err := v.s.svc.Images.Remove(ctx, req.GetNames())
	if err != nil {
		return nil, err
	}
	resp := &api.RemoveImagesResponse{}
	for _, img := range res.Removed {
		resp.Removed = append(resp.Removed, apiImage(img))
	}
	for _, err := range res.Errors {
		resp.Errors = append(resp.Errors, err.Error())
	}
	return resp, nil
}

func (v *service) InspectImage(ctx context.Context, req *api.InspectImageRequest) (*api.InspectImageResponse, error) {
	if v.s.svc.Images == nil {
		return nil, unimplemented("InspectImage")
	}
	res, err := v.s.svc.Images.Inspect(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	resp := &api.InspectImageResponse{Image: apiImage(res.Image), Index: res.Index, Missing: res.Missing}
	for _, m := range res.Manifests {
		resp.Manifests = append(resp.Manifests, &api.InspectedManifest{
			Platform: m.Platform, Digest: m.Digest.String(), MediaType: m.MediaType, Manifest: m.Manifest, Config: m.Config,
		})
	}
	return resp, nil
}

func (v *service) TagImage(ctx context.Context, req *api.TagImageRequest) (*api.TagImageResponse, error) {
	if v.s.svc.Images == nil {
		return nil, unimplemented("TagImage")
	}
	img, err := v.s.svc.Images.Tag(ctx, req.GetSource(), req.GetTarget())
	if err != nil {
		return nil, err
	}
	return &api.TagImageResponse{Image: apiImage(img)}, nil
}

func (v *service) PushImage(ctx context.Context, req *api.PushImageRequest) (*api.PushImageResponse, error) {
	if v.s.svc.Images == nil {
		return nil, unimplemented("PushImage")
	}
	res, err := v.s.svc.Images.Push(ctx, images.PushRequest{Name: req.GetName(), Credentials: requestCredentials(req.GetCredentials())})
	if err != nil {
		return nil, err
	}
	return &api.PushImageResponse{Ref: res.Ref, Digest: res.Digest.String(), Size: res.Size}, nil
}

// requestCredentials answers the resolver's credential questions from
// the logins the client sent, by registry host.
func requestCredentials(creds []*api.RegistryCredential) registry.CredentialFunc {
	if len(creds) == 0 {
		return nil
	}
	byHost := map[string]*api.RegistryCredential{}
	for _, c := range creds {
		byHost[registry.HostKey(c.GetHost())] = c
	}
	return func(_ context.Context, host string) (authn.AuthConfig, bool, error) {
		c, ok := byHost[registry.HostKey(host)]
		if !ok || (c.GetUsername() == "" && c.GetIdentityToken() == "") {
			return authn.AuthConfig{}, false, nil
		}
		return authn.AuthConfig{Username: c.GetUsername(), Password: c.GetSecret(), IdentityToken: c.GetIdentityToken()}, true, nil
	}
}

func (v *service) ImportImage(stream grpc.ClientStreamingServer[api.ImportImageMessage, api.ImportImageResponse]) error {
	if v.s.svc.Images == nil {
		return unimplemented("ImportImage")
	}
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("import: read request: %w", err)
	}
	h := first.GetHeader()
	if h == nil {
		return errdefs.Invalidf("import: the first message must carry the header")
	}
	req := images.ImportRequest{Name: h.GetName(), SourceName: h.GetSourceName(), Platform: h.GetPlatform(), Message: h.GetMessage()}
	res, err := v.s.svc.Images.Import(stream.Context(), req, &importReader{s: stream, buf: first.GetData()})
	if err != nil {
		return err
	}
	resp := &api.ImportImageResponse{Kind: res.Kind}
	for _, img := range res.Images {
		resp.Images = append(resp.Images, apiImage(img))
	}
	return stream.SendAndClose(resp)
}

// importReader reads the file of an ImportImage stream: the data of the
// first message, then of each next one, until the client closes its side.
type importReader struct {
	s interface {
		Recv() (*api.ImportImageMessage, error)
	}
	buf []byte
	eof bool
}

func (r *importReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		m, err := r.s.Recv()
		if errors.Is(err, io.EOF) {
			r.eof = true
			continue
		}
		if err != nil {
			return 0, err
		}
		r.buf = m.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (v *service) SaveImage(req *api.SaveImageRequest, stream grpc.ServerStreamingServer[api.SaveImageChunk]) error {
	if v.s.svc.Images == nil {
		return unimplemented("SaveImage")
	}
	bw := bufio.NewWriterSize(&chunkWriter{send: stream.Send}, saveChunk)
	sreq := images.SaveRequest{Names: req.GetNames(), Format: req.GetFormat(), Platform: req.GetPlatform()}
	if err := v.s.svc.Images.Save(stream.Context(), sreq, bw); err != nil {
		return err
	}
	return bw.Flush()
}

// chunkWriter sends what is written as SaveImageChunk messages.
type chunkWriter struct {
	send func(*api.SaveImageChunk) error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += saveChunk {
		end := min(off+saveChunk, len(p))
		// The message is sent before Write returns, so p is not kept.
		if err := w.send(&api.SaveImageChunk{Data: p[off:end]}); err != nil {
			return off, errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("send to client: %w", err))
		}
	}
	return len(p), nil
}
