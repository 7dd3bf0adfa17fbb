package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/registry"
)

var (
	_ ImageManager = (*BuildBackend)(nil)
	_ Runner       = (*BuildBackend)(nil)
)

// pushJobs is how many blobs one push uploads at a time.
const pushJobs = 4

// checkParts answers Unimplemented when the backend has no engine parts.
func (b *BuildBackend) checkParts(what string) error {
	if b.parts == nil {
		return unimplemented(what)
	}
	return nil
}

// storedImage returns the stored image ref names, with the error users
// see for a name the store lacks.
func (b *BuildBackend) storedImage(ctx context.Context, ref string) (imagestore.Image, error) {
	img, err := b.parts.Images.Get(ctx, ref)
	if errdefs.IsNotFound(err) {
		return imagestore.Image{}, notInStore(ref)
	}
	return img, err
}

// notInStore is the error for an image name the store lacks:
// image "foo:latest" not found in kilnd's image store (kiln images lists them).
func notInStore(ref string) error {
	shown := ref
	if r, err := registry.ParseReference(ref); err == nil {
		shown = imagestore.FamiliarName(registry.NormalizedName(r))
	}
	return errdefs.NotFoundf("image %q not found in kilnd's image store (kiln images lists them)", shown)
}

// apiImage describes a stored image for the API.
func (b *BuildBackend) apiImage(ctx context.Context, img imagestore.Image) *api.Image {
	plats, size := summarize(ctx, b.parts.Content, img.Target)
	return &api.Image{
		Name: imagestore.FamiliarName(img.Name), Digest: img.Target.Digest.String(),
		MediaType: img.Target.MediaType, Platforms: plats, Size: size,
		Created: timestamppb.New(img.Created),
	}
}

// RemoveImages implements ImageManager.
func (b *BuildBackend) RemoveImages(ctx context.Context, req *api.RemoveImagesRequest) (*api.RemoveImagesResponse, error) {
	if err := b.checkParts("RemoveImages"); err != nil {
		return nil, err
	}
	if len(req.GetNames()) == 0 {
		return nil, errdefs.Invalidf("kiln image rm: name at least one image")
	}
	resp := &api.RemoveImagesResponse{}
	for _, n := range req.GetNames() {
		img, err := b.storedImage(ctx, n)
		if err == nil && strings.Contains(n, "@") {
			// A digest reference names the image, not a tag to remove.
			err = errdefs.Invalidf("image %q: remove it by name (kiln image rm %s), not by digest", n, imagestore.FamiliarName(img.Name))
		}
		if err == nil {
			if err = b.parts.Images.Delete(ctx, img.Name); errdefs.IsNotFound(err) {
				err = notInStore(n) // removed by someone else meanwhile
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			resp.Errors = append(resp.Errors, err.Error())
			continue
		}
		resp.Removed = append(resp.Removed, b.apiImage(ctx, img))
	}
	return resp, nil
}

// TagImage implements ImageManager.
func (b *BuildBackend) TagImage(ctx context.Context, req *api.TagImageRequest) (*api.TagImageResponse, error) {
	if err := b.checkParts("TagImage"); err != nil {
		return nil, err
	}
	if _, err := imagestore.NormalizeName(req.GetTarget()); err != nil {
		return nil, err
	}
	if _, err := b.storedImage(ctx, req.GetSource()); err != nil {
		return nil, err
	}
	img, err := b.parts.Images.Tag(ctx, req.GetSource(), req.GetTarget())
	if errdefs.IsNotFound(err) {
		return nil, notInStore(req.GetSource())
	}
	if err != nil {
		return nil, err
	}
	return &api.TagImageResponse{Image: b.apiImage(ctx, img)}, nil
}

// InspectImage implements ImageManager.
func (b *BuildBackend) InspectImage(ctx context.Context, req *api.InspectImageRequest) (*api.InspectImageResponse, error) {
	if err := b.checkParts("InspectImage"); err != nil {
		return nil, err
	}
	img, err := b.storedImage(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	resp := &api.InspectImageResponse{Image: b.apiImage(ctx, img)}
	shown := imagestore.FamiliarName(img.Name)
	if types.MediaType(img.Target.MediaType).IsIndex() {
		x, err := loadIndex(ctx, b.parts.Content, img.Target)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", shown, err)
		}
		resp.Index, resp.Missing = x.raw, x.missing
		for _, m := range x.manifests {
			resp.Manifests = append(resp.Manifests, inspected(m))
		}
		return resp, nil
	}
	m, err := loadManifest(ctx, b.parts.Content, img.Target)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", shown, err)
	}
	resp.Manifests = []*api.InspectedManifest{inspected(m)}
	return resp, nil
}

func inspected(m *loadedManifest) *api.InspectedManifest {
	return &api.InspectedManifest{
		Platform: m.platform(), Digest: m.desc.Digest.String(), MediaType: m.desc.MediaType,
		Manifest: m.raw, Config: m.config,
	}
}

// PushImage implements ImageManager: the image goes to the registry its
// name says, through the daemon's resolver with the client's credentials
// ahead of the daemon's. A failed push leaves the store as it was.
func (b *BuildBackend) PushImage(ctx context.Context, req *api.PushImageRequest) (*api.PushImageResponse, error) {
	if err := b.checkParts("PushImage"); err != nil {
		return nil, err
	}
	if strings.Contains(req.GetName(), "@") {
		return nil, errdefs.Invalidf("kiln image push %s: push a name (a tag), not a digest", req.GetName())
	}
	img, err := b.storedImage(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	ref, err := registry.ParseReference(img.Name)
	if err != nil {
		return nil, err
	}
	shown := imagestore.FamiliarName(img.Name)
	resolver := b.parts.Resolver.WithCredentials(requestCredentials(req.GetCredentials()))
	opts := []remote.Option{remote.WithJobs(pushJobs)}
	if types.MediaType(img.Target.MediaType).IsIndex() {
		x, err := loadIndex(ctx, b.parts.Content, img.Target)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", shown, err)
		}
		if len(x.missing) > 0 {
			return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf(
				"push %s: its index lists %s, which kilnd's store does not have (only some platforms were pulled); a push needs every platform",
				shown, strings.Join(x.missing, ", ")))
		}
		idx, err := newStoreIndex(ctx, b.parts.Content, x)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", shown, err)
		}
		err = resolver.WriteIndex(ctx, ref, idx, opts...)
		if err != nil {
			return nil, pushError(ref, err)
		}
	} else {
		m, err := loadManifest(ctx, b.parts.Content, img.Target)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", shown, err)
		}
		v1img, err := storeImage(ctx, b.parts.Content, m)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", shown, err)
		}
		if err := resolver.Write(ctx, ref, v1img, opts...); err != nil {
			return nil, pushError(ref, err)
		}
	}
	_, size := summarize(ctx, b.parts.Content, img.Target)
	return &api.PushImageResponse{Ref: registry.NormalizedName(ref), Digest: img.Target.Digest.String(), Size: size}, nil
}

// pushError makes sure a failed push names the registry; the resolver's
// errors do, others (a blob missing from the store) get it here.
func pushError(ref name.Reference, err error) error {
	var re *registry.Error
	if errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("push %s to %s: %w", registry.NormalizedName(ref), ref.Context().RegistryStr(), err)
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
