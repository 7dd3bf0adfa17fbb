package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/internal/flight"
	"github.com/kiln-build/kiln/registry"
)

// target is an image reference as the puller uses it.
type target struct {
	ref      name.Reference
	repo     name.Repository
	repoName string        // "docker.io/library/busybox"
	tag      string        // "" when the reference names none
	digest   digest.Digest // "" for a tag reference
}

// parseTarget parses an image reference the way Docker does ("busybox" is
// docker.io/library/busybox:latest). A reference may have both a tag and a
// digest ("busybox:1.36@sha256:..."); the digest decides.
func parseTarget(s string) (target, error) {
	ref, err := registry.ParseReference(s)
	if err != nil {
		return target{}, err
	}
	t := target{ref: ref, repo: ref.Context(), repoName: imagestore.RepositoryName(ref.Context())}
	switch r := ref.(type) {
	case name.Tag:
		t.tag = r.TagStr()
	case name.Digest:
		t.digest = digest.Digest(r.DigestStr())
		// ggcr keeps no tag in a digest reference: take an explicit one
		// from the text ("repo:tag@sha256:..."; a colon after the last
		// slash is a tag, one before it a registry port).
		base, _, _ := strings.Cut(s, "@")
		if i := strings.LastIndexByte(base, ':'); i > strings.LastIndexByte(base, '/') {
			t.tag = base[i+1:]
		}
	}
	return t, nil
}

// String returns the normalised reference: repo:tag, repo@digest or
// repo:tag@digest.
func (t target) String() string {
	s := t.repoName
	if t.tag != "" {
		s += ":" + t.tag
	}
	if t.digest != "" {
		s += "@" + t.digest.String()
	}
	return s
}

// pinned returns the reference pinned by d, keeping the tag for people.
func (t target) pinned(d digest.Digest) string {
	t.digest = d
	return t.String()
}

// resolved is one platform's image manifest with its config, both in the
// content store.
type resolved struct {
	t          target
	desc       ocispec.Descriptor // the platform's manifest
	manifest   ocispec.Manifest
	config     ocispec.Image
	configJSON []byte
}

// ResolveImageConfig implements frontend.ImageResolver (the engine hands
// the puller to frontends): it returns ref
// pinned by the digest of platform's manifest, and that image's config.
//
// A tag is looked up in the local image store first (a FROM of an image
// built earlier needs no registry; not in a Pulling view), then resolved
// with the registry. A
// reference by digest whose manifest and config are in the content store
// never contacts the registry. Whatever is fetched (index, manifest,
// config) is kept in the content store.
func (p *Puller) ResolveImageConfig(ctx context.Context, ref string, platform ocispec.Platform) (imageconfig.Resolved, error) {
	r, err := p.resolve(ctx, ref, platform)
	if err != nil {
		return imageconfig.Resolved{}, err
	}
	return imageconfig.Resolved{Ref: r.t.pinned(r.desc.Digest), Digest: r.desc.Digest, Config: r.configJSON}, nil
}

// normalizePlatform fills in the host's platform where p names none.
func normalizePlatform(p ocispec.Platform) ocispec.Platform {
	if p.OS == "" && p.Architecture == "" {
		return platforms.DefaultSpec()
	}
	if p.OS == "" {
		p.OS = "linux"
	}
	return platforms.Normalize(p)
}

func (p *Puller) resolve(ctx context.Context, ref string, platform ocispec.Platform) (*resolved, error) {
	t, err := parseTarget(ref)
	if err != nil {
		return nil, err
	}
	platform = normalizePlatform(platform)

	var local error
	if t.digest == "" && p.images != nil && !p.pull {
		img, err := p.images.Get(ctx, t.String())
		switch {
		case err == nil:
			r, err := p.fromDescriptor(ctx, t, img.Target, platform, true)
			if err == nil {
				return r, nil
			}
			if ctx.Err() != nil {
				return nil, err
			}
			p.log.InfoContext(ctx, "local image unusable, trying the registry", "image", imagestore.FamiliarName(img.Name), "error", err)
			local = fmt.Errorf("the local image %s was no use: %w", imagestore.FamiliarName(img.Name), err)
		case !errdefs.IsNotFound(err):
			return nil, err
		}
	}

	top := ocispec.Descriptor{Digest: t.digest}
	if t.digest == "" {
		if top, err = p.head(ctx, t); err != nil {
			return nil, withNote(err, local)
		}
	}
	r, err := p.fromDescriptor(ctx, t, top, platform, false)
	return r, withNote(err, local)
}

// withNote adds why the local image was not used to a registry error.
func withNote(err, note error) error {
	if err == nil || note == nil {
		return err
	}
	return fmt.Errorf("%w (%s)", err, note.Error())
}

// head resolves a tag to the descriptor of its manifest or index with a
// HEAD request (registries count GETs of manifests against rate limits,
// not HEADs). A registry that cannot answer HEAD gets a GET, whose
// answer is kept.
func (p *Puller) head(ctx context.Context, t target) (ocispec.Descriptor, error) {
	d, err := p.reg.Head(ctx, t.ref)
	if err == nil {
		return ocispec.Descriptor{MediaType: string(d.MediaType), Digest: digest.Digest(d.Digest.String()), Size: d.Size}, nil
	}
	if ctx.Err() != nil || errdefs.IsNotFound(err) || errors.Is(err, errdefs.ErrUnauthenticated) || errors.Is(err, errdefs.ErrPermissionDenied) || errdefs.IsUnavailable(err) {
		return ocispec.Descriptor{}, err
	}
	p.log.DebugContext(ctx, "HEAD of a manifest failed, trying GET", "ref", t.String(), "error", err)
	got, gerr := p.reg.Get(ctx, t.ref)
	if gerr != nil {
		return ocispec.Descriptor{}, gerr
	}
	raw, err := got.RawManifest()
	if err != nil {
		return ocispec.Descriptor{}, registry.WrapError("pull", t.ref, err)
	}
	desc := ocispec.Descriptor{MediaType: manifestMediaType(string(got.MediaType), raw), Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := content.WriteBlob(ctx, p.cs, "", bytes.NewReader(raw), desc); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w", t, err)
	}
	return desc, nil
}

// manifestMediaType picks the media type of a manifest: the HTTP header's
// if it names a manifest or index, else what the JSON says.
func manifestMediaType(header string, raw []byte) string {
	if isIndex(header) || isManifest(header) {
		return header
	}
	if mt := sniffMediaType(raw); mt != "" {
		return mt
	}
	return header
}

// fromDescriptor follows desc (an index or a manifest; its media type may
// be unknown) to platform's manifest and its config. localOnly fails
// instead of fetching a blob the content store lacks.
func (p *Puller) fromDescriptor(ctx context.Context, t target, desc ocispec.Descriptor, platform ocispec.Platform, localOnly bool) (*resolved, error) {
	fromIndex := false
	for depth := 0; ; depth++ {
		raw, d, err := p.manifestBlob(ctx, t, desc, localOnly)
		if err != nil {
			return nil, err
		}
		desc = d
		switch {
		case isIndex(desc.MediaType):
			if depth > 2 {
				return nil, errdefs.Invalidf("pull %s: indexes nested more than 2 deep", t)
			}
			var idx ocispec.Index
			if err := json.Unmarshal(raw, &idx); err != nil {
				return nil, errdefs.Invalidf("pull %s: index %s: %v", t, desc.Digest, err)
			}
			if desc, err = selectPlatform(t, idx, platform); err != nil {
				return nil, err
			}
			fromIndex = true
		case isManifest(desc.MediaType):
			return p.fromManifest(ctx, t, desc, raw, platform, !fromIndex, localOnly)
		default:
			return nil, errdefs.WithClass(errdefs.ErrUnimplemented,
				fmt.Errorf("pull %s: %s has media type %q, which is not an image manifest or index", t, desc.Digest, desc.MediaType))
		}
	}
}

// fromManifest reads the manifest raw and fetches its config. checkPlatform
// rejects a single-platform image of another platform (an index entry was
// chosen by its platform already).
func (p *Puller) fromManifest(ctx context.Context, t target, desc ocispec.Descriptor, raw []byte, platform ocispec.Platform, checkPlatform, localOnly bool) (*resolved, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errdefs.Invalidf("pull %s: manifest %s: %v", t, desc.Digest, err)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return nil, errdefs.Invalidf("pull %s: manifest %s: config digest: %v", t, desc.Digest, err)
	}
	if err := p.blob(ctx, t, m.Config, localOnly, nil); err != nil {
		return nil, pullError(t, "config "+m.Config.Digest.String(), err)
	}
	cfgJSON, err := content.ReadBlob(ctx, p.cs, m.Config)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", t, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, errdefs.Invalidf("pull %s: image config %s: %v", t, m.Config.Digest, err)
	}
	if checkPlatform && cfg.OS != "" && cfg.Architecture != "" {
		if have := platforms.Normalize(cfg.Platform); !platforms.Only(platform).Match(have) {
			return nil, errdefs.NotFoundf("pull %s: the image is %s, not %s", t, platforms.Format(have), platforms.Format(platform))
		}
	}
	return &resolved{t: t, desc: desc, manifest: m, config: cfg, configJSON: cfgJSON}, nil
}

// selectPlatform picks the index entry that best matches platform (as
// containerd does: linux/arm64 takes arm64/v8, amd64 may fall back to 386).
// Entries without a platform count as linux/amd64; attestation manifests
// (unknown/unknown) are never picked.
func selectPlatform(t target, idx ocispec.Index, want ocispec.Platform) (ocispec.Descriptor, error) {
	match := platforms.Only(want)
	var (
		best  ocispec.Descriptor
		bestP ocispec.Platform
		found bool
		have  []string
	)
	for _, d := range idx.Manifests {
		if !isManifest(d.MediaType) && !isIndex(d.MediaType) {
			continue
		}
		pl := ocispec.Platform{OS: "linux", Architecture: "amd64"}
		if d.Platform != nil {
			pl = platforms.Normalize(*d.Platform)
		}
		if pl.OS == "unknown" {
			continue
		}
		have = append(have, platforms.Format(pl))
		if match.Match(pl) && (!found || match.Less(pl, bestP)) {
			best, bestP, found = d, pl, true
		}
	}
	if !found {
		list := "no images"
		if len(have) > 0 {
			list = strings.Join(have, ", ")
		}
		return ocispec.Descriptor{}, errdefs.NotFoundf("pull %s: no %s image in the index (it has %s)", t, platforms.Format(want), list)
	}
	return best, nil
}

// manifestBlob returns the manifest or index desc names from the content
// store, fetching it by digest first when the store lacks it (once, however
// many pulls ask). The returned descriptor has its size and media type
// filled in.
func (p *Puller) manifestBlob(ctx context.Context, t target, desc ocispec.Descriptor, localOnly bool) ([]byte, ocispec.Descriptor, error) {
	ok, err := content.Exists(ctx, p.cs, desc.Digest)
	if err != nil {
		return nil, desc, fmt.Errorf("pull %s: %w", t, err)
	}
	if !ok {
		if localOnly {
			return nil, desc, errdefs.NotFoundf("pull %s: manifest %s is not in the content store", t, desc.Digest)
		}
		fetch := func(ctx context.Context, _ *flight.Call) error {
			ref := t.repo.Digest(desc.Digest.String())
			got, err := p.reg.Get(ctx, ref)
			if err != nil {
				return err
			}
			raw, err := got.RawManifest()
			if err != nil {
				return registry.WrapError("pull", ref, err)
			}
			d := ocispec.Descriptor{MediaType: manifestMediaType(string(got.MediaType), raw), Digest: desc.Digest, Size: int64(len(raw))}
			return content.WriteBlob(ctx, p.cs, "", bytes.NewReader(raw), d)
		}
		if err := once(ctx, &p.blobs, desc.Digest.String(), fetch); err != nil {
			return nil, desc, err
		}
	}
	info, err := p.cs.Info(ctx, desc.Digest)
	if err != nil {
		return nil, desc, fmt.Errorf("pull %s: %w", t, err)
	}
	desc.Size = info.Size
	raw, err := content.ReadBlob(ctx, p.cs, desc)
	if err != nil {
		return nil, desc, fmt.Errorf("pull %s: %w", t, err)
	}
	if !isIndex(desc.MediaType) && !isManifest(desc.MediaType) {
		desc.MediaType = sniffMediaType(raw)
	}
	return raw, desc, nil
}
