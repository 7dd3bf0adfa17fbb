package remote

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/kiln-build/kiln/config"
)

// Shared cache export modes (the export key of [[cache.registry]]).
const (
	SharedExportAsync = "async"
	SharedExportSync  = "sync"
)

// SharedFunc opens the daemon's shared caches once its parts exist.
type SharedFunc func(ctx context.Context, d Deps) ([]*Shared, error)

// Shared checks kilnd.toml's shared cache tables with the backends their
// types name and returns what opens the shared caches: one per index
// (indexes: the [[cache.registry]] tables) over the blob stores (blobs:
// the [[cache.blob]] tables; read from the first that has a blob, written
// to all). Every problem is an invalid-argument error at its file and
// line. It opens nothing: kilnd --validate calls it too.
func (b Backends) Shared(indexes, blobs []config.Table) (SharedFunc, error) {
	var errs []error
	var stores []BlobsFunc
	for _, t := range blobs {
		be, err := b.tableBackend(t, func(x Backend) bool { return x.Blobs != nil })
		if err == nil {
			var f BlobsFunc
			if f, err = be.Blobs(t.Parser()); err == nil {
				stores = append(stores, f)
			}
		}
		errs = append(errs, err)
	}
	type index struct {
		open IndexFunc
		o    SharedOptions
		name string
	}
	var idxs []index
	for _, t := range indexes {
		be, err := b.tableBackend(t, func(x Backend) bool { return x.Index != nil })
		if err == nil {
			ix := index{name: t.Type()}
			p := t.Parser()
			bindShared(p, &ix.o)
			if ix.open, err = be.Index(p); err == nil {
				idxs = append(idxs, ix)
			}
		}
		errs = append(errs, err)
	}
	if err := config.JoinErrors(errs); err != nil {
		return nil, err
	}
	if len(indexes) > 0 && len(blobs) == 0 {
		return nil, indexes[0].Errorf("", `needs a [[cache.blob]] to keep the layers its records name (type = "filesystem", path = a directory every daemon shares)`)
	}
	if len(indexes) == 0 && len(blobs) == 0 {
		return nil, nil
	}
	return func(ctx context.Context, d Deps) ([]*Shared, error) {
		if len(idxs) == 0 {
			d.Logger.Warn("[[cache.blob]] is configured without a [[cache.registry]] index: the blob store is not used")
			return nil, nil
		}
		var bs []BlobStore
		for _, open := range stores {
			s, err := open(ctx, d)
			if err != nil {
				return nil, err
			}
			bs = append(bs, s)
		}
		blobs := MultiStore(bs...)
		var out []*Shared
		for _, ix := range idxs {
			idx, err := ix.open(ctx, d)
			if err == nil {
				o := ix.o
				o.Name, o.Index, o.Blobs, o.Writer, o.Importer = ix.name, idx, blobs, d.Writer, d.Importer
				o.Layers, o.Local, o.Logger = d.Layers, d.Local, d.Logger
				var sc *Shared
				if sc, err = NewShared(o); err == nil {
					out = append(out, sc)
					continue
				}
			}
			for _, sc := range out {
				_ = sc.Close()
			}
			return nil, fmt.Errorf("shared cache %s: %w", ix.name, err)
		}
		return out, nil
	}, nil
}

// bindShared binds the keys every [[cache.registry]] table takes, whatever
// its type (export, flush-timeout, compression), to p: Backends.Shared
// binds them before the type's Index binds its own.
func bindShared(p *config.TableParser, o *SharedOptions) {
	p.StringFunc("export", func(export string) error {
		switch export {
		case "", SharedExportAsync:
		case SharedExportSync:
			o.Sync = true
		default:
			return fmt.Errorf(`unsupported export mode %q (want "async": builds do not wait for their steps to be written, or "sync": they do)`, export)
		}
		return nil
	})
	p.Duration("flush-timeout", &o.FlushTimeout)
	p.StringFunc("compression", func(c string) error {
		o.Compression = c
		switch c {
		case "", CompressionZstd, CompressionGzip, CompressionUncompressed:
		default:
			return fmt.Errorf(`unsupported compression %q (want "zstd", "gzip" or "uncompressed")`, c)
		}
		return nil
	})
}

// FilesystemBackend is [[cache.blob]] type = "filesystem": a directory
// every daemon sharing the cache mounts (path, absolute).
func FilesystemBackend() Backend {
	return Backend{Blobs: func(p *config.TableParser) (BlobsFunc, error) {
		var dir string
		p.StringFunc("path", func(s string) error {
			if !filepath.IsAbs(s) {
				return fmt.Errorf("must be an absolute path, got %q", s)
			}
			dir = s
			return nil
		})
		if err := p.Parse(); err != nil {
			return nil, err
		}
		if dir == "" {
			return nil, p.Table().Errorf("path", `missing: a filesystem cache needs path = "/var/lib/kiln/cache"`)
		}
		return func(context.Context, Deps) (BlobStore, error) {
			fs, err := OpenFileStore(dir)
			if err != nil {
				return nil, fmt.Errorf("[[cache.blob]] %s: %w", dir, err)
			}
			return fs, nil
		}, nil
	}}
}
