package config

import (
	"github.com/google/go-containerregistry/pkg/name"

	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
)

// Supported values, in the order messages list them.
var (
	supportedEntitlements = []string{"network.host", "security.insecure"}
	supportedSnapshotters = []string{"auto", "overlayfs", "native"}
	supportedNetworkModes = []string{"auto", "host", "none", "bridge"}
	supportedRuntimes     = []string{"auto", "runc", "crun"}
	supportedLogFormats   = []string{"text", "json"}
	supportedLogLevels    = []string{"trace", "debug", "info", "warn", "warning", "error"}
	knownArchs            = []string{"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64"}
)

// fieldError is a FieldError that still knows its path.
type fieldError struct {
	FieldError
	path keyPath
}

// Validate checks the configuration's values. It returns nil or the
// problems joined, each a *FieldError naming its key.
func (c *Config) Validate() error {
	errs := c.validate(func(h, _ string) keyPath { return keyPath{}.key("registry", h) })
	if len(errs) == 0 {
		return nil
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = &e.FieldError
	}
	return errors.Join(out...)
}

type checker struct{ errs []*fieldError }

func (c *checker) fail(p keyPath, format string, args ...any) {
	c.errs = append(c.errs, &fieldError{FieldError: FieldError{Key: p.Display(), Err: fmt.Errorf(format, args...)}, path: p})
}

// oneOf checks that v is one of allowed; what names the kind of value.
func (c *checker) oneOf(p keyPath, what, v string, allowed []string) {
	if v == "" {
		c.fail(p, "missing: want one of %s", strings.Join(allowed, ", "))
		return
	}
	if !slices.Contains(allowed, v) {
		c.fail(p, "unsupported %s %q (supported: %s)", what, v, strings.Join(allowed, ", "))
	}
}

// hostPath(host, key) is the table that set key of a registry host ("" for
// the host itself).
func (c *Config) validate(hostPath func(host, key string) keyPath) []*fieldError {
	var ck checker
	top := keyPath{}
	if c.Version != 0 && c.Version != Version {
		ck.fail(top.key("version"), "unsupported version %d (this kilnd reads version %d)", c.Version, Version)
	}
	if c.Root != "" && !filepath.IsAbs(c.Root) {
		ck.fail(top.key("root"), "must be an absolute path, got %q", c.Root)
	}
	for i, e := range c.InsecureEntitlements {
		if !slices.Contains(supportedEntitlements, e) {
			ck.fail(top.key("insecure-entitlements").at(i), "unknown entitlement %q (supported: %s)", e, strings.Join(supportedEntitlements, ", "))
		}
	}
	if c.DebugAddress != "" {
		if _, port, err := net.SplitHostPort(c.DebugAddress); err != nil || port == "" {
			ck.fail(top.key("debug", "address"), "bad address %q: want host:port, e.g. \"127.0.0.1:6060\"", c.DebugAddress)
		}
	}
	ck.oneOf(top.key("log", "format"), "log format", c.Log.Format, supportedLogFormats)
	ck.oneOf(top.key("log", "level"), "log level", c.Log.Level, supportedLogLevels)
	c.validateGRPC(&ck)
	c.validateWorker(&ck)
	rl := top.key("rootless")
	if c.Rootless.UIDMap != "" {
		if _, err := ParseIDMap(c.Rootless.UIDMap); err != nil {
			ck.fail(rl.key("uid-map"), "%v", err)
		}
	}
	if c.Rootless.GIDMap != "" {
		if _, err := ParseIDMap(c.Rootless.GIDMap); err != nil {
			ck.fail(rl.key("gid-map"), "%v", err)
		}
	}
	for _, host := range sortedKeys(c.Registry) {
		validateHost(&ck, func(key string) keyPath { return hostPath(host, key) }, host, c.Registry[host])
	}
	c.validateFrontend(&ck)
	c.validateExporter(&ck)
	return ck.errs
}

// BuiltinOutputTypes are the --output types kilnd implements itself
// (cmd/kilnd registers exactly these); an [[exporter.plugin]] cannot take
// one of their names.
func BuiltinOutputTypes() []string {
	return []string{"image", "registry", "oci", "docker", "local", "tar"}
}

// ExporterEnvPrefix starts the environment variables kilnd sets for an
// exporter plugin; [[exporter.plugin]] env cannot set them.
const ExporterEnvPrefix = "KILN_EXPORTER_"

var (
	pluginNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	envKeyRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// validateExporter checks the [[exporter.plugin]] tables: a name that is
// a new output type, an absolute program, well-formed env entries.
func (c *Config) validateExporter(ck *checker) {
	seen := map[string]int{}
	for i, pl := range c.Exporter.Plugin {
		p := keyPath{}.key("exporter", "plugin").at(i)
		switch {
		case pl.Name == "":
			ck.fail(p.key("name"), `missing: the output type users give, e.g. name = "s3" for kiln build -o type=s3`)
		case !pluginNameRE.MatchString(pl.Name):
			ck.fail(p.key("name"), "bad name %q: want lowercase letters, digits, '.', '_' or '-', starting with a letter or digit (at most 63)", pl.Name)
		case slices.Contains(BuiltinOutputTypes(), pl.Name):
			ck.fail(p.key("name"), "%q is a built-in output type; choose another name (built-in: %s)", pl.Name, strings.Join(BuiltinOutputTypes(), ", "))
		default:
			if j, ok := seen[pl.Name]; ok {
				ck.fail(p.key("name"), "%q is already the name of plugin[%d]", pl.Name, j)
			}
			seen[pl.Name] = i
		}
		switch {
		case len(pl.Command) == 0:
			ck.fail(p.key("command"), `missing: the program and its arguments, e.g. command = ["/usr/local/bin/kiln-export-s3", "--region", "eu-west-1"]`)
		case !filepath.IsAbs(pl.Command[0]):
			ck.fail(p.key("command"), "the program must be an absolute path (it runs without a shell or PATH lookup), got %q", pl.Command[0])
		}
		for j, e := range pl.Env {
			k, _, ok := strings.Cut(e, "=")
			switch {
			case !ok:
				ck.fail(p.key("env").at(j), "bad entry (not shown: it may hold a secret): want KEY=VALUE")
			case !envKeyRE.MatchString(k):
				ck.fail(p.key("env").at(j), "bad variable name %q: want KEY=VALUE, KEY of letters, digits and '_'", k)
			case strings.HasPrefix(k, ExporterEnvPrefix):
				ck.fail(p.key("env").at(j), "%s: variables starting with %s are set by kilnd", k, ExporterEnvPrefix)
			}
		}
	}
}

// validateFrontend checks the image references of [frontend].
func (c *Config) validateFrontend(ck *checker) {
	f := keyPath{}.key("frontend")
	if s := c.Frontend.Syntax; s != "" {
		if _, err := name.ParseReference(s); err != nil {
			ck.fail(f.key("syntax"), "%q is not an image reference (want e.g. registry.local:5000/dockerfile:1)", s)
		}
	}
	for key, list := range map[string][]string{"builtin-syntax": c.Frontend.BuiltinSyntax, "allowed-repositories": c.Frontend.AllowedRepositories} {
		for i, r := range list {
			if _, err := name.NewRepository(r); err != nil {
				ck.fail(f.key(key).at(i), "%q is not an image repository: %v", r, err)
			}
		}
	}
}

func (c *Config) validateGRPC(ck *checker) {
	g := keyPath{}.key("grpc")
	seen := map[string]int{}
	for i, a := range c.GRPC.Address {
		p := g.key("address").at(i)
		if _, _, err := ParseAddress(a); err != nil {
			ck.fail(p, "%v", err)
			continue
		}
		if j, ok := seen[a]; ok {
			ck.fail(p, "%q is listed twice (also address[%d])", a, j)
		}
		seen[a] = i
	}
	if c.GRPC.UID != nil && *c.GRPC.UID < 0 {
		ck.fail(g.key("uid"), "must not be negative, got %d", *c.GRPC.UID)
	}
	if c.GRPC.GID != nil && *c.GRPC.GID < 0 {
		ck.fail(g.key("gid"), "must not be negative, got %d", *c.GRPC.GID)
	}
	t := g.key("tls")
	tls := c.GRPC.TLS
	switch {
	case tls.Cert != "" && tls.Key == "":
		ck.fail(t.key("cert"), "key is not set: a TLS listener needs both cert and key")
	case tls.Key != "" && tls.Cert == "":
		ck.fail(t.key("key"), "cert is not set: a TLS listener needs both cert and key")
	case tls.CA != "" && tls.Cert == "":
		ck.fail(t.key("ca"), "cert and key are not set: client verification needs a TLS listener")
	}
}

// ParseAddress splits a listener address into a network ("unix" or "tcp")
// and an address for net.Listen: unix:///run/kiln/kilnd.sock,
// tcp://127.0.0.1:1234, tcp://[::1]:1234.
func ParseAddress(addr string) (network, address string, err error) {
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		return "", "", fmt.Errorf("bad address %q: want unix:///path/to/socket or tcp://host:port", addr)
	}
	switch scheme {
	case "unix":
		if rest == "" || !strings.HasPrefix(rest, "/") {
			return "", "", fmt.Errorf("bad address %q: a unix socket needs an absolute path (unix:///run/kiln/kilnd.sock)", addr)
		}
		return "unix", filepath.Clean(rest), nil
	case "tcp":
		if strings.ContainsAny(rest, "/?#@") {
			return "", "", fmt.Errorf("bad address %q: want tcp://host:port", addr)
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return "", "", fmt.Errorf("bad address %q: want tcp://host:port", addr)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return "", "", fmt.Errorf("bad address %q: port %q is not a number from 0 to 65535", addr, port)
		}
		return "tcp", net.JoinHostPort(host, port), nil
	default:
		return "", "", fmt.Errorf("bad address %q: unsupported scheme %q (supported: unix://, tcp://)", addr, scheme+"://")
	}
}

func (c *Config) validateWorker(ck *checker) {
	w := keyPath{}.key("worker", "oci")
	o := c.Worker.OCI
	if !o.Enabled {
		ck.fail(w.key("enabled"), "the OCI worker cannot be disabled: it is kilnd's only worker")
	}
	if c.Worker.Containerd.Enabled {
		ck.fail(keyPath{}.key("worker", "containerd", "enabled"), "kilnd has no containerd worker; set enabled = false or remove [worker.containerd]")
	}
	if o.CacheSize < 0 {
		ck.fail(w.key("cache-size"), "must not be negative")
	}
	if o.MaxParallelism < 0 {
		ck.fail(w.key("max-parallelism"), "must not be negative, got %d", o.MaxParallelism)
	}
	for _, p := range []struct {
		key string
		v   float64
	}{{"cpu-pressure", o.CPUPressure}, {"memory-pressure", o.MemoryPressure}, {"io-pressure", o.IOPressure}} {
		if p.v < 0 || p.v > 100 {
			ck.fail(w.key(p.key), "%v is out of range: want a percentage from 0 to 100 (0 turns the check off)", p.v)
		}
	}
	if o.MemoryReserve.Bytes < 0 || o.MemoryReserve.Percent < 0 || o.MemoryReserve.Percent > 100 {
		ck.fail(w.key("memory-reserve"), "%s is out of range", o.MemoryReserve)
	}
	for i, p := range o.Platforms {
		pl, err := platforms.Parse(p)
		switch {
		case err != nil || !slices.Contains(knownArchs, pl.Architecture):
			ck.fail(w.key("platforms").at(i), "bad platform %q: want os/arch[/variant], e.g. linux/arm64", p)
		case pl.OS != "linux":
			ck.fail(w.key("platforms").at(i), "unsupported platform %q: kiln builds linux images only", p)
		}
	}
	switch {
	case o.Binary == "":
		ck.fail(w.key("binary"), "missing: want auto, runc, crun or an absolute path to one")
	case filepath.IsAbs(o.Binary):
	case !slices.Contains(supportedRuntimes, o.Binary):
		ck.fail(w.key("binary"), "unsupported runtime %q (supported: auto, runc, crun, or an absolute path to one)", o.Binary)
	}
	ck.oneOf(w.key("snapshotter"), "snapshotter", o.Snapshotter, supportedSnapshotters)
	ck.oneOf(w.key("network-mode"), "network mode", o.NetworkMode, supportedNetworkModes)
	for i, p := range o.GCPolicy {
		for j, f := range p.Filters {
			if _, err := GCFilterType(f); err != nil {
				ck.fail(w.key("gcpolicy").at(i).key("filters").at(j), "%v", err)
			}
		}
	}
}

// gcFilterTypes are the record types a gcpolicy filter may name (BuildKit's;
// Kiln has nothing of the last three, so a policy of them removes nothing).
var gcFilterTypes = []string{"regular", "exec.cachemount", "source.local", "source.git.checkout", "frontend", "internal"}

// GCFilterType returns the record type of a [[worker.oci.gcpolicy]]
// filter: "type==exec.cachemount" (or "type=…") is "exec.cachemount".
// Other keys are refused rather than ignored.
func GCFilterType(f string) (string, error) {
	k, v, ok := strings.Cut(f, "==")
	if !ok {
		k, v, ok = strings.Cut(f, "=")
	}
	switch {
	case !ok:
		return "", fmt.Errorf("bad filter %q: want type==KIND (type==source.local)", f)
	case strings.TrimSpace(k) != "type":
		return "", fmt.Errorf("filter %q: only type==KIND filters are supported (KIND: %s)", f, strings.Join(gcFilterTypes, ", "))
	}
	v = strings.TrimSpace(v)
	if !slices.Contains(gcFilterTypes, v) {
		return "", fmt.Errorf("filter %q: unknown type %q (want %s)", f, v, strings.Join(gcFilterTypes, ", "))
	}
	return v, nil
}

func validateHost(ck *checker, at func(key string) keyPath, host string, h RegistryHost) {
	p := at("")
	hostKey := p
	if len(p) > 0 && p[len(p)-1].index >= 0 {
		hostKey = p.key("host")
	}
	if strings.Contains(host, "://") || strings.ContainsAny(host, "/ ") || host == "" {
		ck.fail(hostKey, "bad registry host %q: want a host name with an optional port (docker.io, registry.local:5000)", host)
	}
	if h.Password != "" && h.Username == "" {
		ck.fail(at("password").key("password"), "username is not set: a password needs a username")
	}
	for i, m := range h.Mirrors {
		if m == "" || strings.Contains(m, "://") {
			ck.fail(at("mirrors").key("mirrors").at(i), "bad mirror %q: want host[:port][/path] without a scheme (set http = true on the mirror's own entry for plain HTTP)", m)
		}
	}
	for i, kp := range h.KeyPair {
		if kp.Key == "" || kp.Cert == "" {
			kp := at("keypair").key("keypair").at(i)
			ck.errs = append(ck.errs, &fieldError{FieldError: FieldError{Key: kp.Header(), Err: errors.New("a keypair needs both key and cert")}, path: kp})
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
