// Package sharedcache is the engine's service over the daemon-wide shared
// caches (kilnd.toml's [[cache.registry]]): it lists the records their
// indexes hold (kiln cache ls --remote), all of them or one build's.
//
// The package imports cache/remote and core.
package sharedcache
