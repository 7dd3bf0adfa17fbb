package exporter

import (
	"strings"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/layer"
)

// ImageFormat says how an image exporter builds images.
type ImageFormat struct {
	// Compression of the layer blobs it has to make.
	Compression layer.Compression
	// OCIMediaTypes selects OCI media types for manifests, configs,
	// layers and indexes; false selects Docker's (schema 2, manifest list).
	OCIMediaTypes bool
	// Annotations to put on manifests, indexes and descriptors. They need
	// OCI media types.
	Annotations []Annotation
	// NoRewriteTimestamp keeps the file times of new layers as they are
	// even when a SOURCE_DATE_EPOCH is set (rewrite-timestamp=false); the
	// config and history times still use the epoch.
	NoRewriteTimestamp bool
}

// Validate reports a bad compression or annotations with Docker media
// types.
func (f ImageFormat) Validate() error {
	if err := f.Compression.Validate(); err != nil {
		return err
	}
	if len(f.Annotations) > 0 && !f.OCIMediaTypes {
		return errdefs.Invalidf("annotation %s: annotations need OCI media types (oci-mediatypes=true)", f.Annotations[0].attr())
	}
	return nil
}

// Annotation targets, as in buildx's annotation-<target>.<key> attributes.
const (
	AnnotateManifest           = "manifest"
	AnnotateIndex              = "index"
	AnnotateManifestDescriptor = "manifest-descriptor"
	AnnotateIndexDescriptor    = "index-descriptor"
)

// Annotation is one annotation an image exporter adds.
type Annotation struct {
	// Target is one of the Annotate* constants: the manifest (of each
	// platform), the index (multi-platform images; the layout's
	// index.json in tarballs), the manifests' descriptors (in the index,
	// or index.json) or the index's descriptor (in index.json).
	Target string
	// Platform limits a manifest or manifest-descriptor annotation to one
	// platform; nil means every platform.
	Platform *ocispec.Platform
	Key      string
	Value    string
}

func (a Annotation) attr() string {
	s := "annotation-" + a.Target
	if a.Platform != nil {
		s += "[" + platforms.Format(*a.Platform) + "]"
	}
	return s + "." + a.Key
}

// parseAnnotation reads an annotation attribute: annotation.KEY (on the
// manifest), annotation-TARGET.KEY, with an optional [os/arch[/variant]]
// after the target. ok is false when attr is not an annotation at all.
func parseAnnotation(attr, value string) (a Annotation, ok bool, err error) {
	rest, found := strings.CutPrefix(attr, "annotation")
	if !found || rest == "" || (rest[0] != '.' && rest[0] != '-' && rest[0] != '[') {
		return Annotation{}, false, nil
	}
	a.Target = AnnotateManifest
	if target, after, found := strings.Cut(rest, "."); found && strings.HasPrefix(target, "-") {
		rest = "." + after
		a.Target = strings.TrimPrefix(target, "-")
		if i := strings.IndexByte(a.Target, '['); i >= 0 {
			rest = a.Target[i:] + rest
			a.Target = a.Target[:i]
		}
	}
	switch a.Target {
	case AnnotateManifest, AnnotateIndex, AnnotateManifestDescriptor, AnnotateIndexDescriptor:
	default:
		return Annotation{}, true, errdefs.Invalidf("%s: unknown annotation target %q (want %s, %s, %s or %s)", attr, a.Target,
			AnnotateManifest, AnnotateIndex, AnnotateManifestDescriptor, AnnotateIndexDescriptor)
	}
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return Annotation{}, true, errdefs.Invalidf("%s: unclosed [platform]", attr)
		}
		p, err := platforms.Parse(rest[1:end])
		if err != nil {
			return Annotation{}, true, errdefs.Invalidf("%s: platform %q: %v", attr, rest[1:end], err)
		}
		if a.Target != AnnotateManifest && a.Target != AnnotateManifestDescriptor {
			return Annotation{}, true, errdefs.Invalidf("%s: only manifest and manifest-descriptor annotations can name a platform", attr)
		}
		a.Platform = &p
		rest = rest[end+1:]
	}
	key, found := strings.CutPrefix(rest, ".")
	if !found || key == "" {
		return Annotation{}, true, errdefs.Invalidf("%s: no annotation key (want annotation.KEY=VALUE or annotation-TARGET.KEY=VALUE)", attr)
	}
	a.Key, a.Value = key, value
	return a, true, nil
}

// annotationsFor returns the annotations for target (and, for manifest
// targets, platform p), or nil when there are none.
func annotationsFor(as []Annotation, target string, p *ocispec.Platform) map[string]string {
	var out map[string]string
	for _, a := range as {
		if a.Target != target {
			continue
		}
		if a.Platform != nil && (p == nil || !samePlatform(*a.Platform, *p)) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[a.Key] = a.Value
	}
	return out
}

func samePlatform(a, b ocispec.Platform) bool {
	return platforms.Format(platforms.Normalize(a)) == platforms.Format(platforms.Normalize(b))
}
