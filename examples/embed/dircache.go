package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
)

// DirType is this program's own cache type: --cache-to
// type=dir,dest=DIR[,mode=max] and --cache-from type=dir,src=DIR keep a
// build's cache in a directory on the machine the engine runs on. It is
// registered in engine.Options.Caches.Types next to nothing else: Kiln's
// own packages know nothing of it.
const DirType = "dir"

// dirBackend is the remote.Backend of DirType: it checks the attributes
// of a value when the build starts and makes the build's cache from them.
// The records and blobs are kept the way Kiln's registry and local
// caches keep theirs (remote.ManifestCache, remote.ManifestExporter):
// blobs/ is a remote.FileStore, records.json the cache config.
func dirBackend() remote.Backend {
	return remote.Backend{
		Import: func(o remote.Option) (remote.ImportFunc, error) {
			a, err := dirAttrs(o, "src")
			if err != nil {
				return nil, err
			}
			return func(_ context.Context, d remote.Deps) (cache.RemoteCache, error) {
				c, err := openDirCache(a.dir)
				if err != nil {
					return nil, err
				}
				return remote.NewManifestCache(DirType, c, d.Importer), nil
			}, nil
		},
		Export: func(o remote.Option) (remote.ExportFunc, error) {
			a, err := dirAttrs(o, "dest", "mode")
			if err != nil {
				return nil, err
			}
			spec := remote.NewExportSpec(o.Type)
			if a.mode != "" {
				spec.Mode = a.mode
			}
			return func(_ context.Context, d remote.Deps) (cache.Exporter, error) {
				c, err := openDirCache(a.dir)
				if err != nil {
					return nil, err
				}
				return remote.NewManifestExporter(remote.ManifestExporterOptions{
					Name: "dir " + a.dir, Target: c, Spec: spec, Layers: d.Layers, Local: d.Local, Writer: d.Writer,
				}), nil
			}, nil
		},
	}
}

// dirOptions are the attributes of a type=dir value.
type dirOptions struct {
	dir  string // src= or dest=: an absolute directory
	mode string // mode=: remote.ModeMin or remote.ModeMax
}

// dirAttrs checks the attributes of o: dirKey (required) and the other
// keys named. Errors name the value as the user wrote it.
func dirAttrs(o remote.Option, dirKey string, keys ...string) (dirOptions, error) {
	var a dirOptions
	valid := append([]string{dirKey}, keys...)
	for k, v := range o.Attrs {
		switch {
		case k == dirKey:
			a.dir = v
		case k == "mode" && slices.Contains(keys, k):
			if v != remote.ModeMin && v != remote.ModeMax {
				return a, o.Errorf("mode=%s: want %s or %s", v, remote.ModeMin, remote.ModeMax)
			}
			a.mode = v
		default:
			slices.Sort(valid)
			return a, o.Errorf("unknown attribute %q (valid: %s)", k, strings.Join(valid, ", "))
		}
	}
	if a.dir == "" {
		return a, o.Errorf("%s is required (%s=DIRECTORY)", dirKey, dirKey)
	}
	if !filepath.IsAbs(a.dir) {
		return a, o.Errorf("%s=%s: want an absolute directory", dirKey, a.dir)
	}
	return a, nil
}

// dirCache is a cache directory: a remote.Source to import from and a
// remote.Target to export to.
type dirCache struct {
	dir   string
	blobs *remote.FileStore
}

var (
	_ remote.Source = (*dirCache)(nil)
	_ remote.Target = (*dirCache)(nil)
)

func openDirCache(dir string) (*dirCache, error) {
	blobs, err := remote.OpenFileStore(filepath.Join(dir, "blobs"))
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	return &dirCache{dir: dir, blobs: blobs}, nil
}

func (c *dirCache) recordsFile() string { return filepath.Join(c.dir, "records.json") }

// Load implements remote.Source.
func (c *dirCache) Load(ctx context.Context) ([]remote.Record, remote.BlobStore, error) {
	recs, err := c.Records(ctx)
	if err == nil && recs == nil {
		err = errdefs.NotFoundf("%s holds no cache", c.dir)
	}
	return recs, c.blobs, err
}

// Blobs implements remote.Target.
func (c *dirCache) Blobs() remote.BlobStore { return c.blobs }

// Records implements remote.Target: the records saved before (none for a
// new directory), which an export merges with its own.
func (c *dirCache) Records(context.Context) ([]remote.Record, error) {
	b, err := os.ReadFile(c.recordsFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	recs, _, err := remote.DecodeConfig(b)
	return recs, err
}

// Save implements remote.Target: records.json is replaced atomically, so
// a reader sees the old cache or the new one.
func (c *dirCache) Save(_ context.Context, records []remote.Record) error {
	b, err := remote.EncodeConfig(records)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.dir, ".records-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.recordsFile())
}
