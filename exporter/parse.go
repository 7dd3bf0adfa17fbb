package exporter

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/internal/attrs"
	"github.com/kiln-build/kiln/layer"
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

func parseImage(typ string, a map[string]string, deps Deps) (Exporter, error) {
	p := attrs.New("type="+typ, a)
	o := ImageOptions{Store: true, Push: typ == TypeRegistry}
	bindNames(p, &o.Names)
	p.Bool("push", &o.Push)
	p.Bool("push-by-digest", &o.PushByDigest)
	p.Bool("registry.insecure", &o.Insecure)
	p.Bool("store", &o.Store)
	p.Bool("unpack", new(bool)) // snapshots are unpacked already
	bindFormat(p, &o.Format, true)
	if err := p.Parse(); err != nil {
		return nil, err
	}
	addNames(&o.Names, deps.Tags)
	if o.PushByDigest && !o.Push {
		return nil, p.Errorf("push-by-digest=true needs push=true")
	}
	e, err := NewImage(deps, o)
	return typed(typ, e, err)
}

func parseTarball(typ string, a map[string]string, deps Deps) (Exporter, error) {
	p := attrs.New("type="+typ, a)
	o := TarballOptions{Docker: typ == TypeDocker, Tar: true}
	bindNames(p, &o.Names)
	p.String("dest", &o.Dest)
	p.Bool("tar", &o.Tar)
	bindFormat(p, &o.Format, typ == TypeOCI)
	if err := p.Parse(); err != nil {
		return nil, err
	}
	if o.Docker {
		addNames(&o.Names, deps.Tags)
	}
	if typ == TypeOCI && o.Dest == "" {
		return nil, p.Errorf("dest is required (dest=image.tar, or dest=- for stdout)")
	}
	e, err := NewTarball(deps, o)
	return typed(typ, e, err)
}

// LayoutOptions reads, from the attributes of an output served by another
// program (an exporter plugin), what the type=oci tarball writer applies
// to the layout it streams: name, compression, compression-level,
// force-compression, oci-mediatypes, rewrite-timestamp and annotation*.
// Every other attribute is the program's and is left alone.
func LayoutOptions(typ string, a map[string]string) (TarballOptions, error) {
	p := attrs.New("type="+typ, a)
	o := TarballOptions{Tar: true}
	bindNames(p, &o.Names)
	bindFormat(p, &o.Format, true)
	// bindFormat's catch-all takes annotation*; this one takes those and
	// lets the program's own attributes through.
	p.Other(func(k, v string) (bool, error) {
		ann, ok, err := parseAnnotation(k, v)
		if ok && err == nil {
			o.Format.Annotations = append(o.Format.Annotations, ann)
		}
		return true, err
	})
	if err := p.Parse(); err != nil {
		return TarballOptions{}, err
	}
	return o, nil
}

func parseFilesystem(typ string, a map[string]string, deps Deps) (Exporter, error) {
	p := attrs.New("type="+typ, a)
	var o FilesystemOptions
	o.Tar = typ == TypeTar
	p.String("dest", &o.Dest)
	p.Func("platform-split", func(v string) error {
		b, err := attrs.ParseBool(v)
		o.PlatformSplit = &b
		return err
	})
	if typ == TypeLocal {
		p.Bool("tar", &o.Tar)
	}
	if err := p.Parse(); err != nil {
		return nil, err
	}
	if o.Dest == "" {
		if typ == TypeLocal {
			return nil, p.Errorf("dest is required (dest=DIRECTORY)")
		}
		return nil, p.Errorf("dest is required (dest=file.tar, or dest=- for stdout)")
	}
	e, err := NewFilesystem(deps, o)
	return typed(typ, e, err)
}

// bindNames binds name: comma-separated image names.
func bindNames(p *attrs.Parser, dst *[]string) {
	p.Func("name", func(v string) error {
		addNames(dst, []string{v})
		return nil
	})
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

// bindFormat binds the attributes of image building.
func bindFormat(p *attrs.Parser, f *ImageFormat, ociDefault bool) {
	f.OCIMediaTypes = ociDefault
	layer.BindCompression(p, &f.Compression)
	p.Bool("oci-mediatypes", &f.OCIMediaTypes)
	p.Func("rewrite-timestamp", func(v string) error {
		b, err := attrs.ParseBool(v)
		f.NoRewriteTimestamp = !b
		return err
	})
	p.Other(func(k, v string) (bool, error) {
		a, ok, err := parseAnnotation(k, v)
		if ok && err == nil {
			f.Annotations = append(f.Annotations, a)
		}
		return ok, err
	}, "annotation.*", "annotation-<manifest|index|manifest-descriptor|index-descriptor>.*")
}
