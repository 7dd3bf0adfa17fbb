package exporter

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/core/errdefs"
)

// Exporter types, as `--output type=` names them.
const (
	TypeImage    = "image"
	TypeRegistry = "registry"
	TypeOCI      = "oci"
	TypeDocker   = "docker"
	TypeLocal    = "local"
	TypeTar      = "tar"
)

// Factory makes the exporters of one --output type. cmd/kilnd builds the
// map of the types a daemon offers, by name, as it does for frontends:
//
//	exporters := map[string]exporter.Factory{
//		exporter.TypeImage: exporter.ImageFactory(),
//		exporter.TypeOCI:   exporter.OCIFactory(),
//		"mytype":           myexporter.Factory(),
//	}
//
// so a new exporter is a package with a Factory and one line of wiring.
type Factory struct {
	// New makes an exporter from an output's attributes (type= taken
	// out). An unknown attribute or a bad value is an
	// errdefs.ErrInvalidArgument error that lists what is valid.
	New func(attrs map[string]string, deps Deps) (Exporter, error)
	// Stores says the output stores or pushes images by the names it is
	// given (type=image, type=registry): kiln build -t adds an image
	// output only when no output stores.
	Stores bool
	// Image says the output is an image whose config can carry the build
	// cache (--cache-to type=inline).
	Image bool
}

// The built-in factories. Each type accepts the attributes buildx users
// know for it:
//
//	image, registry  name, push, push-by-digest, registry.insecure, store, unpack,
//	                 compression, compression-level, force-compression,
//	                 oci-mediatypes, rewrite-timestamp, annotation*
//	oci, docker      name, dest, tar, compression, compression-level,
//	                 force-compression, oci-mediatypes, rewrite-timestamp, annotation*
//	local            dest, platform-split, tar
//	tar              dest, platform-split
//
// registry is image with push=true. oci-mediatypes defaults to true except
// for docker; store defaults to true. dest is required for oci, local and
// tar (the client writes there; docker without dest is for loading).
// Deps.Tags (kiln build -t) are added to the names of image, registry and
// docker outputs.

// ImageFactory is type=image: an image in the daemon's store, pushed too
// with push=true.
func ImageFactory() Factory {
	return Factory{New: func(a map[string]string, d Deps) (Exporter, error) { return parseImage(TypeImage, a, d) }, Stores: true, Image: true}
}

// RegistryFactory is type=registry: type=image with push=true.
func RegistryFactory() Factory {
	return Factory{New: func(a map[string]string, d Deps) (Exporter, error) { return parseImage(TypeRegistry, a, d) }, Stores: true, Image: true}
}

// OCIFactory is type=oci: an OCI layout tarball sent to the client.
func OCIFactory() Factory {
	return Factory{New: func(a map[string]string, d Deps) (Exporter, error) { return parseTarball(TypeOCI, a, d) }, Image: true}
}

// DockerFactory is type=docker: a docker load tarball sent to the client.
func DockerFactory() Factory {
	return Factory{New: func(a map[string]string, d Deps) (Exporter, error) { return parseTarball(TypeDocker, a, d) }, Image: true}
}

// LocalFactory is type=local: the result's files in a client directory.
func LocalFactory() Factory {
	return Factory{New: func(a map[string]string, d Deps) (Exporter, error) { return parseFilesystem(TypeLocal, a, d) }}
}

// TarFactory is type=tar: the result's files as a tar stream to the
// client.
func TarFactory() Factory {
	return Factory{New: func(a map[string]string, d Deps) (Exporter, error) { return parseFilesystem(TypeTar, a, d) }}
}

// SortTypes orders output type names for messages: the built-in ones as
// buildx lists them (image, registry, oci, docker, local, tar), then the
// others by name.
func SortTypes(types []string) {
	rank := map[string]int{TypeImage: 1, TypeRegistry: 2, TypeOCI: 3, TypeDocker: 4, TypeLocal: 5, TypeTar: 6}
	sort.Slice(types, func(i, j int) bool {
		ri, rj := rank[types[i]], rank[types[j]]
		switch {
		case ri != 0 && rj != 0:
			return ri < rj
		case ri != 0 || rj != 0:
			return ri != 0
		}
		return types[i] < types[j]
	})
}

// typed prefixes a constructor's error with the output type.
func typed(typ string, e Exporter, err error) (Exporter, error) {
	if err != nil {
		return nil, fmt.Errorf("type=%s: %w", typ, err)
	}
	return e, nil
}

func parseImage(typ string, attrs map[string]string, deps Deps) (Exporter, error) {
	p := &attrParser{typ: typ, attrs: attrs, fns: map[string]func(string) error{}}
	o := ImageOptions{Store: true, Push: typ == TypeRegistry}
	p.names(&o.Names)
	p.boolean("push", &o.Push)
	p.boolean("push-by-digest", &o.PushByDigest)
	p.boolean("registry.insecure", &o.Insecure)
	p.boolean("store", &o.Store)
	p.boolean("unpack", new(bool)) // snapshots are unpacked already
	p.format(&o.Format, true)
	if err := p.parse(); err != nil {
		return nil, err
	}
	addNames(&o.Names, deps.Tags)
	if o.PushByDigest && !o.Push {
		return nil, p.errorf("push-by-digest=true needs push=true")
	}
	e, err := NewImage(deps, o)
	return typed(typ, e, err)
}

func parseTarball(typ string, attrs map[string]string, deps Deps) (Exporter, error) {
	p := &attrParser{typ: typ, attrs: attrs, fns: map[string]func(string) error{}}
	o := TarballOptions{Docker: typ == TypeDocker, Tar: true}
	p.names(&o.Names)
	p.str("dest", &o.Dest)
	p.boolean("tar", &o.Tar)
	p.format(&o.Format, typ == TypeOCI)
	if err := p.parse(); err != nil {
		return nil, err
	}
	if o.Docker {
		addNames(&o.Names, deps.Tags)
	}
	if typ == TypeOCI && o.Dest == "" {
		return nil, p.errorf("dest is required (dest=image.tar, or dest=- for stdout)")
	}
	e, err := NewTarball(deps, o)
	return typed(typ, e, err)
}

func parseFilesystem(typ string, attrs map[string]string, deps Deps) (Exporter, error) {
	p := &attrParser{typ: typ, attrs: attrs, fns: map[string]func(string) error{}}
	var o FilesystemOptions
	o.Tar = typ == TypeTar
	p.str("dest", &o.Dest)
	p.fns["platform-split"] = func(v string) error {
		b, err := parseBool(v)
		o.PlatformSplit = &b
		return err
	}
	if typ == TypeLocal {
		p.boolean("tar", &o.Tar)
	}
	if err := p.parse(); err != nil {
		return nil, err
	}
	if o.Dest == "" {
		if typ == TypeLocal {
			return nil, p.errorf("dest is required (dest=DIRECTORY)")
		}
		return nil, p.errorf("dest is required (dest=file.tar, or dest=- for stdout)")
	}
	e, err := NewFilesystem(deps, o)
	return typed(typ, e, err)
}

// attrParser binds attribute names to typed fields, then checks a map
// against them: one table per type, so a new attribute is one line and a
// misspelled one is an error that lists the right spellings.
type attrParser struct {
	typ         string
	attrs       map[string]string
	fns         map[string]func(string) error
	annotations *[]Annotation
}

func (p *attrParser) errorf(format string, args ...any) error {
	return errdefs.Invalidf("type=%s: "+format, append([]any{p.typ}, args...)...)
}

func (p *attrParser) str(key string, dst *string) {
	p.fns[key] = func(v string) error { *dst = v; return nil }
}

func (p *attrParser) boolean(key string, dst *bool) {
	p.fns[key] = func(v string) error {
		b, err := parseBool(v)
		*dst = b
		return err
	}
}

// names binds name: comma-separated image names.
func (p *attrParser) names(dst *[]string) {
	p.fns["name"] = func(v string) error {
		addNames(dst, []string{v})
		return nil
	}
}

// addNames adds the comma-separated image names of each list entry.
func addNames(dst *[]string, lists []string) {
	for _, l := range lists {
		for _, n := range strings.Split(l, ",") {
			if n = strings.TrimSpace(n); n != "" {
				*dst = append(*dst, n)
			}
		}
	}
}

// format binds the attributes of image building.
func (p *attrParser) format(f *ImageFormat, ociDefault bool) {
	f.OCIMediaTypes = ociDefault
	p.fns["compression"] = func(v string) error {
		f.Compression.Type = v
		if v == "" {
			return fmt.Errorf("empty (want %s, %s or %s)", Gzip, Zstd, Uncompressed)
		}
		return Compression{Type: v}.Validate()
	}
	p.fns["compression-level"] = func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		f.Compression.Level = &n
		return nil
	}
	p.boolean("force-compression", &f.Compression.Force)
	p.boolean("oci-mediatypes", &f.OCIMediaTypes)
	p.fns["rewrite-timestamp"] = func(v string) error {
		b, err := parseBool(v)
		f.NoRewriteTimestamp = !b
		return err
	}
	p.annotations = &f.Annotations
}

// parse applies every attribute in key order.
func (p *attrParser) parse() error {
	keys := make([]string, 0, len(p.attrs))
	for k := range p.attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := p.attrs[k]
		if fn, ok := p.fns[k]; ok {
			if err := fn(v); err != nil {
				return p.valueError(k, v, err)
			}
			continue
		}
		if p.annotations != nil {
			a, ok, err := parseAnnotation(k, v)
			if err != nil {
				return fmt.Errorf("type=%s: %w", p.typ, err)
			}
			if ok {
				*p.annotations = append(*p.annotations, a)
				continue
			}
		}
		return p.errorf("unknown attribute %q (valid: %s)", k, strings.Join(p.valid(), ", "))
	}
	return nil
}

func (p *attrParser) valueError(k, v string, err error) error {
	if errdefs.IsInvalidArgument(err) {
		return fmt.Errorf("type=%s: %w", p.typ, err)
	}
	return p.errorf("%s=%s: %v", k, v, err)
}

func (p *attrParser) valid() []string {
	var keys []string
	for k := range p.fns {
		keys = append(keys, k)
	}
	if p.annotations != nil {
		keys = append(keys, "annotation.*", "annotation-<manifest|index|manifest-descriptor|index-descriptor>.*")
	}
	sort.Strings(keys)
	return keys
}

// parseBool reads a boolean attribute; a bare key (empty value) is true.
func parseBool(v string) (bool, error) {
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("want true or false")
	}
	return b, nil
}
