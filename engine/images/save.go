package images

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/registry"
)

// savedImage is one name of a SaveImage request, resolved.
type savedImage struct {
	full      string             // docker.io/library/app:latest
	ref       name.Reference     // its tag
	target    ocispec.Descriptor // what index.json points at
	indexRaw  []byte             // the index, when target is one
	manifests []*loadedManifest
}

// SaveRequest is one image save.
type SaveRequest struct {
	Names []string
	// Format is "oci" (the default) or "docker".
	Format string
	// Platform picks one platform of multi-platform images
	// ("os/arch[/variant]"); format docker saves the daemon's by default.
	Platform string
}

// Save writes an OCI image layout tarball (oci-layout, blobs/sha256/...,
// index.json naming each image) to w or, for format "docker", the same
// plus docker load's manifest.json and repositories, with one platform
// per image. Blobs come straight from the content store.
func (s *Service) Save(ctx context.Context, req SaveRequest, w io.Writer) error {
	docker := false
	switch req.Format {
	case "", "oci":
	case "docker":
		docker = true
	default:
		return errdefs.Invalidf("--format %q: want \"oci\" or \"docker\"", req.Format)
	}
	if len(req.Names) == 0 {
		return errdefs.Invalidf("kiln image save: name at least one image")
	}
	var want *ocispec.Platform
	if p := req.Platform; p != "" {
		pl, err := platforms.Parse(p)
		if err != nil {
			return errdefs.Invalidf("--platform %q: %v", p, err)
		}
		pl = platforms.Normalize(pl)
		want = &pl
	} else if docker {
		pl := platforms.DefaultSpec()
		want = &pl
	}
	var imgs []savedImage
	for _, n := range req.Names {
		si, err := s.resolveSave(ctx, n, want)
		if err != nil {
			return err
		}
		imgs = append(imgs, si)
	}
	ts := &saveTar{tw: tar.NewWriter(w), cs: s.o.Content, seen: map[digest.Digest]bool{}}
	return ts.write(ctx, imgs, docker)
}

// resolveSave finds the image name n names and what of it to save: the
// whole index, or with want one platform's manifest.
func (s *Service) resolveSave(ctx context.Context, n string, want *ocispec.Platform) (savedImage, error) {
	img, err := s.stored(ctx, n)
	if err != nil {
		return savedImage{}, err
	}
	shown := imagestore.FamiliarName(img.Name)
	ref, err := registry.ParseReference(img.Name)
	if err != nil {
		return savedImage{}, err
	}
	si := savedImage{full: img.Name, ref: ref, target: img.Target}
	if !types.MediaType(img.Target.MediaType).IsIndex() {
		m, err := loadManifest(ctx, s.o.Content, img.Target)
		if err != nil {
			return si, fmt.Errorf("save %s: %w", shown, err)
		}
		si.manifests = []*loadedManifest{m}
		return si, nil
	}
	x, err := loadIndex(ctx, s.o.Content, img.Target)
	if err != nil {
		return si, fmt.Errorf("save %s: %w", shown, err)
	}
	if want == nil {
		if len(x.missing) > 0 {
			return si, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf(
				"save %s: its index lists %s, which kilnd's store does not have (only some platforms were pulled); save one platform with --platform",
				shown, strings.Join(x.missing, ", ")))
		}
		si.indexRaw, si.manifests = x.raw, x.manifests
		return si, nil
	}
	match := platforms.Only(*want)
	var best *loadedManifest
	var have []string
	for _, m := range x.manifests {
		p, err := platforms.Parse(m.platform())
		if err != nil {
			continue
		}
		have = append(have, m.platform())
		if match.Match(p) && (best == nil || match.Less(p, mustParse(best.platform()))) {
			best = m
		}
	}
	if best == nil {
		return si, errdefs.NotFoundf("save %s: no %s image of it is in kilnd's store (it has %s)", shown, platforms.Format(*want), strings.Join(have, ", "))
	}
	si.target = best.desc
	if si.target.MediaType == "" {
		si.target.MediaType = best.manifest.MediaType
	}
	si.manifests = []*loadedManifest{best}
	return si, nil
}

func mustParse(s string) ocispec.Platform {
	p, _ := platforms.Parse(s)
	return p
}

// saveTar writes an image layout tarball with fixed times and modes.
type saveTar struct {
	tw   *tar.Writer
	cs   content.Store
	seen map[digest.Digest]bool
}

var saveTime = time.Unix(0, 0).UTC()

func (t *saveTar) header(name string, typ byte, size int64) error {
	mode := int64(0o644)
	if typ == tar.TypeDir {
		mode = 0o755
	}
	return t.tw.WriteHeader(&tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: saveTime, Format: tar.FormatPAX})
}

func (t *saveTar) file(name string, data []byte) error {
	if err := t.header(name, tar.TypeReg, int64(len(data))); err != nil {
		return err
	}
	_, err := t.tw.Write(data)
	return err
}

func (t *saveTar) json(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.file(name, b)
}

func blobName(d digest.Digest) string {
	return path.Join("blobs", d.Algorithm().String(), d.Encoded())
}

// blob copies a blob from the content store, once per tarball.
func (t *saveTar) blob(ctx context.Context, d ocispec.Descriptor) error {
	if t.seen[d.Digest] {
		return nil
	}
	t.seen[d.Digest] = true
	ra, err := t.cs.ReaderAt(ctx, d)
	if err != nil {
		return fmt.Errorf("read blob %s: %w", d.Digest, err)
	}
	defer ra.Close()
	if err := t.header(blobName(d.Digest), tar.TypeReg, ra.Size()); err != nil {
		return err
	}
	_, err = io.Copy(t.tw, io.NewSectionReader(ra, 0, ra.Size()))
	return err
}

// dockerEntry is one entry of docker save's manifest.json.
type dockerEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func (t *saveTar) write(ctx context.Context, imgs []savedImage, docker bool) error {
	if err := t.file("oci-layout", []byte(`{"imageLayoutVersion":"`+ocispec.ImageLayoutVersion+`"}`)); err != nil {
		return err
	}
	if err := t.header("blobs/", tar.TypeDir, 0); err != nil {
		return err
	}
	if err := t.header("blobs/sha256/", tar.TypeDir, 0); err != nil {
		return err
	}
	index := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	var entries []*dockerEntry
	byConfig := map[digest.Digest]*dockerEntry{}
	repos := map[string]map[string]string{}
	for _, si := range imgs {
		for _, m := range si.manifests {
			for _, l := range m.manifest.Layers {
				if err := t.blob(ctx, l); err != nil {
					return err
				}
			}
			if err := t.blob(ctx, m.manifest.Config); err != nil {
				return err
			}
			if err := t.blob(ctx, m.desc); err != nil {
				return err
			}
		}
		if si.indexRaw != nil {
			if err := t.blob(ctx, si.target); err != nil {
				return err
			}
		}
		d := si.target
		d.Annotations = map[string]string{
			"io.containerd.image.name": si.full,
			ocispec.AnnotationRefName:  si.ref.Identifier(),
		}
		index.Manifests = append(index.Manifests, d)
		if !docker {
			continue
		}
		m := si.manifests[0]
		familiar := imagestore.FamiliarName(si.full)
		e := byConfig[m.manifest.Config.Digest]
		if e == nil {
			e = &dockerEntry{Config: blobName(m.manifest.Config.Digest), RepoTags: []string{}, Layers: []string{}}
			for _, l := range m.manifest.Layers {
				e.Layers = append(e.Layers, blobName(l.Digest))
			}
			byConfig[m.manifest.Config.Digest] = e
			entries = append(entries, e)
		}
		e.RepoTags = append(e.RepoTags, familiar)
		repo := strings.TrimSuffix(familiar, ":"+si.ref.Identifier())
		top := m.manifest.Config.Digest.Encoded()
		if n := len(m.manifest.Layers); n > 0 {
			top = m.manifest.Layers[n-1].Digest.Encoded()
		}
		if repos[repo] == nil {
			repos[repo] = map[string]string{}
		}
		repos[repo][si.ref.Identifier()] = top
	}
	if err := t.json("index.json", index); err != nil {
		return err
	}
	if docker {
		if err := t.json("manifest.json", entries); err != nil {
			return err
		}
		if err := t.json("repositories", repos); err != nil {
			return err
		}
	}
	return t.tw.Close()
}
