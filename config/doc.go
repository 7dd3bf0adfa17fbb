// Package config owns kilnd's configuration file, kilnd.toml: its typed
// schema, the built-in defaults (default.toml, embedded), strict loading with
// file:line errors, validation, and printing the effective configuration with
// secrets masked.
//
// The schema uses kebab-case keys (cache-size, redis-addr, config-file) and
// also accepts the common parts of BuildKit's buildkitd.toml (camelCase gc
// policy keys, gckeepstorage, [registry."host"] tables), so users can bring
// their file. Every problem is reported as
//
//	kilnd.toml:12: [[cache.registry]] type: unsupported cache type "memcached" (supported: redis)
//
// that is file:line: key: what is wrong.
//
// The package imports only core/errdefs from Kiln; it knows nothing about the
// daemon, gRPC or the engine.
package config
