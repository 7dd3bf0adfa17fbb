package main

import (
	"github.com/kiln-build/kiln/cache/remote"
	cachelocal "github.com/kiln-build/kiln/cache/remote/local"
	cacheredis "github.com/kiln-build/kiln/cache/remote/redis"
	cacheregistry "github.com/kiln-build/kiln/cache/remote/registry"
	"github.com/kiln-build/kiln/config"
)

// cacheBackends are kilnd's cache types, by name: what --cache-from and
// --cache-to type=NAME take, and what kilnd.toml's [[cache.registry]] and
// [[cache.blob]] type = "NAME" open. A new backend is one line here.
func cacheBackends() remote.Backends {
	return remote.Backends{
		remote.TypeRegistry:   cacheregistry.Backend(),
		remote.TypeLocal:      cachelocal.Backend(),
		remote.TypeInline:     remote.InlineBackend(),
		remote.TypeFilesystem: remote.FilesystemBackend(),
		cacheredis.Type:       cacheredis.Backend(),
	}
}

// checkCaches checks the shared cache tables of cfg with the backends of
// their types (kilnd --validate, and before the root is opened).
func checkCaches(cfg *config.Config) error {
	_, err := cacheBackends().Shared(cfg.CacheTables("registry"), cfg.CacheTables("blob"))
	return err
}
