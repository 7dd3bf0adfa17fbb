package config

import (
	"os"
	"os/exec"
	"path/filepath"
)

// Version is the configuration schema version this package reads.
const Version = 1

// Config is kilnd's configuration. Keys are kebab-case in TOML.
type Config struct {
	// Version is the schema version; 0 (unset) means Version.
	Version int `toml:"version"`
	// Root is the state directory (default /var/lib/kiln; rootless:
	// $XDG_DATA_HOME/kiln).
	Root string `toml:"root"`
	// Debug turns on debug logging (same as [log] level = "debug").
	Debug bool `toml:"debug"`
	// DebugAddress is where the debug listener serves Prometheus
	// /metrics and /debug/pprof (host:port); empty: no listener. In the
	// file: [debug] address, or buildkitd.toml's [grpc] debugAddress.
	DebugAddress string `toml:"-"`
	// InsecureEntitlements lists the entitlements builds may ask for:
	// "network.host", "security.insecure".
	InsecureEntitlements []string `toml:"insecure-entitlements"`

	Log      Log      `toml:"log"`
	GRPC     GRPC     `toml:"grpc"`
	Worker   Worker   `toml:"worker"`
	Cache    Cache    `toml:"cache"`
	Rootless Rootless `toml:"rootless"`
	Frontend Frontend `toml:"frontend"`
	Exporter Exporter `toml:"exporter"`

	// Registry holds per-registry settings keyed by host ("docker.io",
	// "my.registry:5000"). The file may give them as [registry."host"]
	// tables (buildkitd.toml style), as [[registry.config]] entries with
	// a host key, or both; they are merged here.
	Registry map[string]RegistryHost `toml:"registry"`

	// File is the path the configuration was loaded from; empty when it is
	// the built-in default.
	File string `toml:"-"`
	// src locates the keys of the file the configuration was loaded
	// from (nil for the defaults), for the errors of CacheTables.
	src *source
}

// Log configures kilnd's own log (stderr).
type Log struct {
	Format string `toml:"format"` // "text" or "json"
	Level  string `toml:"level"`  // "debug", "info", "warn", "error"
}

// GRPC configures the API listeners.
type GRPC struct {
	// Address lists the listeners: unix:///path or tcp://host:port.
	Address []string `toml:"address"`
	// UID and GID own the unix sockets when set.
	UID *int `toml:"uid,omitempty"`
	GID *int `toml:"gid,omitempty"`
	TLS TLS  `toml:"tls"`
}

// TLS configures TLS on tcp:// listeners. With CA set, clients must present
// a certificate signed by it (mTLS).
type TLS struct {
	Cert string `toml:"cert,omitempty"`
	Key  string `toml:"key,omitempty"`
	CA   string `toml:"ca,omitempty"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

// Worker holds the worker sections.
type Worker struct {
	OCI OCIWorker `toml:"oci"`
	// Containerd is accepted so that buildkitd.toml files load; kilnd has
	// no containerd worker, so it must stay disabled.
	Containerd ContainerdWorker `toml:"containerd"`
}

// ContainerdWorker is buildkitd.toml's [worker.containerd]; only enabled =
// false is accepted.
type ContainerdWorker struct {
	Enabled bool `toml:"enabled"`
}

// OCIWorker configures the worker that runs steps with an OCI runtime.
type OCIWorker struct {
	// Enabled must be true: kilnd has no other worker.
	Enabled bool `toml:"enabled"`
	// CacheSize is the size gc keeps the build cache under.
	CacheSize Size `toml:"cache-size"`
	// MaxParallelism caps the steps that run a container at once; 0:
	// no cap. Steps start by measured pressure (package sched).
	MaxParallelism int `toml:"max-parallelism"`
	// CPUPressure, MemoryPressure and IOPressure are the highest
	// pressures (PSI "some" over the last second, in percent) at which a
	// new step still starts; 0 turns a check off.
	CPUPressure    float64 `toml:"cpu-pressure"`
	MemoryPressure float64 `toml:"memory-pressure"`
	IOPressure     float64 `toml:"io-pressure"`
	// MemoryReserve is the memory that must stay available after a new
	// step takes what it may need: a size, or a percentage of the
	// machine's memory.
	MemoryReserve DiskSpace `toml:"memory-reserve"`
	// Platforms are added to the native platform.
	Platforms []string `toml:"platforms"`
	// Binary is the OCI runtime: "auto" (crun when it is installed, else
	// runc; see RuntimeBinary), "runc", "crun" or an absolute path to one
	// of them.
	Binary string `toml:"binary"`
	// Snapshotter is "auto" (overlayfs when it works, else native),
	// "overlayfs" or "native".
	Snapshotter string `toml:"snapshotter"`
	// NetworkMode is the default network of RUN steps: "auto", "host",
	// "none" or "bridge".
	NetworkMode string `toml:"network-mode"`
	// GC turns on garbage collection of the build cache.
	GC bool `toml:"gc"`
	// GCPolicy is an ordered list of prune policies; empty means one
	// policy keeping CacheSize.
	GCPolicy []GCPolicy `toml:"gcpolicy"`
}

// GCPolicy is one prune policy (buildkitd.toml's [[worker.oci.gcpolicy]]).
type GCPolicy struct {
	All          bool      `toml:"all"`
	Filters      []string  `toml:"filters"`
	KeepDuration Duration  `toml:"keep-duration"`
	KeepBytes    DiskSpace `toml:"keep-bytes"`
	// ReservedSpace is never reclaimed; MaxUsedSpace is the most the
	// cache may use; MinFreeSpace is the free disk space gc tries to
	// leave.
	ReservedSpace DiskSpace `toml:"reserved-space"`
	MaxUsedSpace  DiskSpace `toml:"max-used-space"`
	MinFreeSpace  DiskSpace `toml:"min-free-space"`
}

// Cache configures the daemon-wide shared cache: indexes
// ([[cache.registry]]) over blob stores ([[cache.blob]]).
type Cache struct {
	Blob     []CacheTable `toml:"blob"`
	Registry []CacheTable `toml:"registry"`
}

// CacheTable is one [[cache.blob]] or [[cache.registry]] table as written:
// its keys and their values as TOML decoded them (string, int64, float64,
// bool, []any, map[string]any). Its "type" names the cache backend that
// reads the other keys (cache/remote.Backend, registered by name in
// cmd/kilnd): Load leaves the table to that backend, which checks it
// through Config.CacheTables (file:line errors).
type CacheTable map[string]any

// Type is the table's type key ("" when it has none or it is not a
// string).
func (t CacheTable) Type() string {
	s, _ := t["type"].(string)
	return s
}

// Rootless configures running without root.
type Rootless struct {
	Enabled bool `toml:"enabled"`
	// UIDMap and GIDMap are "container:host:size" ranges, comma
	// separated ("0:100000:65536").
	UIDMap string `toml:"uid-map,omitempty"`
	GIDMap string `toml:"gid-map,omitempty"`
}

// Frontend configures how build definitions become graphs: which
// frontend images (gateway frontends) kilnd runs for `# syntax=` lines,
// the BUILDKIT_SYNTAX build arg and BuildKit's gateway.v0 frontend.
type Frontend struct {
	// Gateway enables frontend images; false refuses builds that name one
	// (built-in frontends keep working).
	Gateway bool `toml:"gateway"`
	// Syntax, if set, is the frontend image run instead of whatever a
	// build names (a vetted copy on a local registry).
	Syntax string `toml:"syntax,omitempty"`
	// BuiltinSyntax lists image repositories whose syntax the built-in
	// Dockerfile frontend implements: builds naming them use it and pull
	// nothing.
	BuiltinSyntax []string `toml:"builtin-syntax"`
	// AllowedRepositories, if set, are the only repositories frontend
	// images may come from.
	AllowedRepositories []string `toml:"allowed-repositories"`
}

// Exporter configures outputs beyond the built-in types.
type Exporter struct {
	// Plugin lists out-of-process exporters, one per [[exporter.plugin]]
	// table.
	Plugin []ExporterPlugin `toml:"plugin"`
}

// ExporterPlugin is one [[exporter.plugin]]: a program kilnd runs for
// each `--output type=NAME`, writing the result to its standard input as
// an OCI image layout tar stream (see docs/extending.md).
type ExporterPlugin struct {
	// Name is the output type users give (kiln build -o type=NAME); it
	// must not be a built-in type.
	Name string `toml:"name"`
	// Command is the program and its arguments; the program is an
	// absolute path, run directly (no shell), as the user kilnd runs as.
	Command []string `toml:"command"`
	// Env adds KEY=VALUE variables to the plugin's environment, which
	// otherwise holds only PATH and the KILN_EXPORTER_* variables.
	Env []string `toml:"env,omitempty"`
	// Timeout bounds one export; 0 means no limit beyond the build's.
	Timeout Duration `toml:"timeout,omitempty"`
}

// RegistryHost configures one registry host.
type RegistryHost struct {
	Mirrors  []string  `toml:"mirrors,omitempty"`
	HTTP     bool      `toml:"http,omitempty"`
	Insecure bool      `toml:"insecure,omitempty"`
	CA       []string  `toml:"ca,omitempty"`
	KeyPair  []KeyPair `toml:"keypair,omitempty"`
	// ConfigFile is a docker config.json whose credentials are used.
	ConfigFile string `toml:"config-file,omitempty"`
	Username   string `toml:"username,omitempty"`
	Password   string `toml:"password,omitempty"`
}

// KeyPair is a client certificate for a registry.
type KeyPair struct {
	Key  string `toml:"key"`
	Cert string `toml:"cert"`
}

// Env is what defaults depend on: who runs kilnd and where.
type Env struct {
	UID    int
	Getenv func(string) string
}

func (e Env) rootless() bool { return e.UID != 0 }

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(k)
}

func (e Env) home() string {
	if h := e.getenv("HOME"); h != "" {
		return h
	}
	return "/"
}

// DefaultPath returns where kilnd looks for its configuration:
// /etc/kiln/kilnd.toml, or $XDG_CONFIG_HOME/kiln/kilnd.toml when not root.
func (e Env) DefaultPath() string {
	if !e.rootless() {
		return "/etc/kiln/kilnd.toml"
	}
	dir := e.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		dir = filepath.Join(e.home(), ".config")
	}
	return filepath.Join(dir, "kiln", "kilnd.toml")
}

// DefaultRoot returns the default state directory: /var/lib/kiln, or
// $XDG_DATA_HOME/kiln when not root.
func (e Env) DefaultRoot() string {
	if !e.rootless() {
		return "/var/lib/kiln"
	}
	dir := e.getenv("XDG_DATA_HOME")
	if dir == "" {
		dir = filepath.Join(e.home(), ".local", "share")
	}
	return filepath.Join(dir, "kiln")
}

// DefaultAddress returns the default listener: unix:///run/kiln/kilnd.sock,
// or unix://$XDG_RUNTIME_DIR/kiln/kilnd.sock when not root.
func (e Env) DefaultAddress() string {
	if !e.rootless() {
		return "unix:///run/kiln/kilnd.sock"
	}
	dir := e.getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = filepath.Join("/run/user", itoa(e.UID))
	}
	return "unix://" + filepath.Join(dir, "kiln", "kilnd.sock")
}

// resolve fills in the defaults that depend on the environment.
func (c *Config) resolve(e Env) {
	if c.Version == 0 {
		c.Version = Version
	}
	if c.Root == "" {
		c.Root = e.DefaultRoot()
	}
	if len(c.GRPC.Address) == 0 {
		c.GRPC.Address = []string{e.DefaultAddress()}
	}
	if c.Debug {
		c.Log.Level = "debug"
	}
}

// Resolve fills in the defaults that depend on the environment (root,
// listener address) for e. Load and Default call it; a
// caller that changes Root or Address to empty calls it again.
func (c *Config) Resolve(e Env) { c.resolve(e) }

// RuntimeBinary is the runtime Binary selects: for "auto", crun when it is
// on PATH or in an sbin directory (it starts a container with about a
// third of runc's CPU time), else runc.
func (o OCIWorker) RuntimeBinary() string {
	if o.Binary != "auto" {
		return o.Binary
	}
	if _, err := exec.LookPath("crun"); err == nil {
		return "crun"
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		if fi, err := os.Stat(filepath.Join(dir, "crun")); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return filepath.Join(dir, "crun")
		}
	}
	return "runc"
}
