package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// The file* types are what the TOML decoder fills. They embed the public
// types and shadow the fields whose TOML form is more than one type (sizes:
// integer or string), that have buildkitd.toml aliases (keepBytes), or
// that mix shapes ([registry]); convert turns them into a Config.

type fileConfig struct {
	Config
	// Debug is debug = true (logging) or a [debug] table (the listener).
	Debug    any            `toml:"debug"`
	GRPC     fileGRPC       `toml:"grpc"`
	Worker   fileWorker     `toml:"worker"`
	Frontend fileFrontend   `toml:"frontend"`
	Exporter fileExporter   `toml:"exporter"`
	Registry map[string]any `toml:"registry"`
}

type fileGRPC struct {
	GRPC
	// DebugAddress is buildkitd.toml's spelling of [debug] address.
	DebugAddress string `toml:"debugAddress"`
}

// fileFrontend also takes buildkitd.toml's [frontend."gateway.v0"] and
// [frontend."dockerfile.v0"] tables.
type fileFrontend struct {
	Frontend
	GatewayV0    *bkFrontend `toml:"gateway.v0"`
	DockerfileV0 *bkFrontend `toml:"dockerfile.v0"`
}

type bkFrontend struct {
	Enabled             *bool    `toml:"enabled"`
	AllowedRepositories []string `toml:"allowedRepositories"`
}

type fileWorker struct {
	Worker
	OCI fileOCI `toml:"oci"`
}

type fileOCI struct {
	OCIWorker
	CacheSize     any `toml:"cache-size"`
	GCKeepStorage any `toml:"gckeepstorage"` // buildkitd.toml: integer MB or a size
	// NetworkMode is buildkitd.toml's spelling of network-mode.
	NetworkMode string         `toml:"networkMode"`
	GCPolicy    []fileGCPolicy `toml:"gcpolicy"`
	// Pressures may be integers or floats; the reserve a size or a
	// percentage.
	CPUPressure    any `toml:"cpu-pressure"`
	MemoryPressure any `toml:"memory-pressure"`
	IOPressure     any `toml:"io-pressure"`
	MemoryReserve  any `toml:"memory-reserve"`
}

// fileGCPolicy takes both buildkitd.toml's camelCase and kebab-case keys.
type fileGCPolicy struct {
	All            bool     `toml:"all"`
	Filters        []string `toml:"filters"`
	KeepDuration   any      `toml:"keepDuration"`
	KeepDurationK  any      `toml:"keep-duration"`
	KeepBytes      any      `toml:"keepBytes"`
	KeepBytesK     any      `toml:"keep-bytes"`
	ReservedSpace  any      `toml:"reservedSpace"`
	ReservedSpaceK any      `toml:"reserved-space"`
	MaxUsedSpace   any      `toml:"maxUsedSpace"`
	MaxUsedSpaceK  any      `toml:"max-used-space"`
	MinFreeSpace   any      `toml:"minFreeSpace"`
	MinFreeSpaceK  any      `toml:"min-free-space"`
}

type fileExporter struct {
	Exporter
	Plugin []fileExporterPlugin `toml:"plugin"`
}

type fileExporterPlugin struct {
	ExporterPlugin
	Timeout any `toml:"timeout"`
}

// fileRegistryHost is one [registry."host"] table or [[registry.config]]
// entry.
type fileRegistryHost struct {
	RegistryHost
	Host string `toml:"host"`
}

// convert builds the Config from what was decoded, recording problems in l.
func (l *loader) convert(fc *fileConfig) *Config {
	cfg := fc.Config
	cfg.GRPC = fc.GRPC.GRPC
	l.convertDebug(&cfg, fc)
	cfg.Worker = fc.Worker.Worker
	cfg.Worker.OCI = fc.Worker.OCI.OCIWorker
	l.convertOCI(&cfg.Worker.OCI, &fc.Worker.OCI)
	cfg.Exporter = fc.Exporter.Exporter
	cfg.Exporter.Plugin = nil
	for i, fp := range fc.Exporter.Plugin {
		ep := fp.ExporterPlugin
		if fp.Timeout != nil {
			d, err := durationOf(fp.Timeout)
			if err != nil {
				l.fail(keyPath{}.key("exporter", "plugin").at(i).key("timeout"), "%v", err)
			}
			ep.Timeout = d
		}
		cfg.Exporter.Plugin = append(cfg.Exporter.Plugin, ep)
	}
	cfg.Registry = l.convertRegistry(fc.Registry)
	l.convertFrontend(&cfg.Frontend, &fc.Frontend)
	return &cfg
}

// convertDebug reads debug = true|false or the [debug] table, and
// [grpc] debugAddress.
func (l *loader) convertDebug(dst *Config, fc *fileConfig) {
	switch v := fc.Debug.(type) {
	case nil:
	case bool:
		dst.Debug = v
	case map[string]any:
		for _, k := range sortedKeys(v) {
			p := keyPath{}.key("debug", k)
			if k != "address" {
				l.fail(p, "unknown key (the [debug] table takes address)")
				continue
			}
			addr, ok := v[k].(string)
			if !ok {
				l.fail(p, "wrong type: want a string (\"127.0.0.1:6060\"), got %s", tomlKind(v[k]))
				continue
			}
			dst.DebugAddress = addr
		}
	default:
		l.fail(keyPath{}.key("debug"), "wrong type: want true or false, or a [debug] table with address, got %s", tomlKind(v))
	}
	if a := fc.GRPC.DebugAddress; a != "" {
		if dst.DebugAddress != "" {
			l.fail(keyPath{}.key("grpc", "debugAddress"), "[debug] address is set too; keep only [debug] address")
		} else {
			dst.DebugAddress = a
		}
	}
}

// convertFrontend applies buildkitd.toml's frontend tables.
func (l *loader) convertFrontend(dst *Frontend, src *fileFrontend) {
	*dst = src.Frontend
	base := keyPath{}.key("frontend")
	if g := src.GatewayV0; g != nil {
		gp := base.key("gateway.v0")
		if g.Enabled != nil {
			if l.pos.has(base.key("gateway")) {
				l.fail(gp.key("enabled"), "gateway is set too; keep only gateway")
			} else {
				dst.Gateway = *g.Enabled
			}
		}
		if len(g.AllowedRepositories) > 0 {
			if l.pos.has(base.key("allowed-repositories")) {
				l.fail(gp.key("allowedRepositories"), "allowed-repositories is set too; keep only allowed-repositories")
			} else {
				dst.AllowedRepositories = g.AllowedRepositories
			}
		}
	}
	if d := src.DockerfileV0; d != nil && d.Enabled != nil && !*d.Enabled {
		l.fail(base.key("dockerfile.v0").key("enabled"), "the built-in Dockerfile frontend cannot be disabled")
	}
}

func (l *loader) convertOCI(dst *OCIWorker, src *fileOCI) {
	base := keyPath{}.key("worker", "oci")
	if src.CacheSize != nil {
		s, err := sizeOf(src.CacheSize)
		if err != nil {
			l.fail(base.key("cache-size"), "%v", err)
		}
		dst.CacheSize = s
	}
	if src.GCKeepStorage != nil {
		if l.pos.has(base.key("cache-size")) {
			l.fail(base.key("gckeepstorage"), "cache-size is set too; keep only cache-size")
		} else {
			v := src.GCKeepStorage
			if mb, ok := v.(int64); ok {
				// buildkitd.toml counts an integer gckeepstorage in MB.
				v = mb * 1e6
			}
			s, err := sizeOf(v)
			if err != nil {
				l.fail(base.key("gckeepstorage"), "%v", err)
			}
			dst.CacheSize = s
		}
	}
	if src.NetworkMode != "" {
		if l.pos.has(base.key("network-mode")) {
			l.fail(base.key("networkMode"), "network-mode is set too; keep only network-mode")
		} else {
			dst.NetworkMode = src.NetworkMode
		}
	}
	for _, p := range []struct {
		key string
		src any
		dst *float64
	}{
		{"cpu-pressure", src.CPUPressure, &dst.CPUPressure},
		{"memory-pressure", src.MemoryPressure, &dst.MemoryPressure},
		{"io-pressure", src.IOPressure, &dst.IOPressure},
	} {
		if p.src == nil {
			continue
		}
		v, err := percentOf(p.src)
		if err != nil {
			l.fail(base.key(p.key), "%v", err)
		}
		*p.dst = v
	}
	if src.MemoryReserve != nil {
		r, err := diskSpaceOf(src.MemoryReserve)
		if err != nil {
			l.fail(base.key("memory-reserve"), `bad value %v: want a size ("2GiB") or a percentage of the machine's memory ("10%%")`, tomlValue(src.MemoryReserve))
		}
		dst.MemoryReserve = r
	}
	dst.GCPolicy = nil
	for i, fp := range src.GCPolicy {
		dst.GCPolicy = append(dst.GCPolicy, l.convertPolicy(base.key("gcpolicy").at(i), fp))
	}
}

// pick returns whichever spelling is set, failing when both are.
func (l *loader) pick(p keyPath, camel string, cv any, kebab string, kv any) (any, keyPath) {
	switch {
	case cv != nil && kv != nil:
		l.fail(p.key(camel), "%s is set too; keep one spelling", kebab)
		return nil, nil
	case cv != nil:
		return cv, p.key(camel)
	default:
		return kv, p.key(kebab)
	}
}

func (l *loader) convertPolicy(p keyPath, fp fileGCPolicy) GCPolicy {
	out := GCPolicy{All: fp.All, Filters: fp.Filters}
	if v, at := l.pick(p, "keepDuration", fp.KeepDuration, "keep-duration", fp.KeepDurationK); v != nil {
		d, err := durationOf(v)
		if err != nil {
			l.fail(at, "%v", err)
		}
		out.KeepDuration = d
	}
	space := func(camel string, cv any, kebab string, kv any, dst *DiskSpace) {
		v, at := l.pick(p, camel, cv, kebab, kv)
		if v == nil {
			return
		}
		d, err := diskSpaceOf(v)
		if err != nil {
			l.fail(at, "%v", err)
		}
		*dst = d
	}
	space("keepBytes", fp.KeepBytes, "keep-bytes", fp.KeepBytesK, &out.KeepBytes)
	space("reservedSpace", fp.ReservedSpace, "reserved-space", fp.ReservedSpaceK, &out.ReservedSpace)
	space("maxUsedSpace", fp.MaxUsedSpace, "max-used-space", fp.MaxUsedSpaceK, &out.MaxUsedSpace)
	space("minFreeSpace", fp.MinFreeSpace, "min-free-space", fp.MinFreeSpaceK, &out.MinFreeSpace)
	return out
}

// convertRegistry merges [registry."host"] tables and [[registry.config]]
// entries into one map keyed by host. Several tables may name the same
// host (the README says the two forms mix): their keys are merged, and a
// key set twice to different values is an error at its second line.
func (l *loader) convertRegistry(raw map[string]any) map[string]RegistryHost {
	if len(raw) == 0 {
		return nil
	}
	out := map[string]RegistryHost{}
	l.hosts = map[string]keyPath{}
	l.hostKeys = map[string]map[string]keyPath{}
	base := keyPath{}.key("registry")
	// merged holds each host's keys so far, with where each was set.
	type setKey struct {
		val  any
		path keyPath
	}
	merged := map[string]map[string]setKey{}
	add := func(p keyPath, host string, val map[string]any) {
		keys, ok := merged[host]
		if !ok {
			keys = map[string]setKey{}
			merged[host] = keys
			l.hosts[host] = p
			l.hostKeys[host] = map[string]keyPath{}
		}
		names := make([]string, 0, len(val))
		for k := range val {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if k == "host" {
				continue
			}
			if prev, ok := keys[k]; ok {
				if !reflect.DeepEqual(prev.val, val[k]) {
					l.errs = append(l.errs, l.located(p.key(k), &FieldError{Key: p.key(k).Display(),
						Err: fmt.Errorf("registry %q: %s is already set to %s at line %d; set it once", host, k, tomlValue(prev.val), l.pos.lineOf(prev.path))}))
				}
				continue
			}
			keys[k] = setKey{val: val[k], path: p.key(k)}
			l.hostKeys[host][k] = p
		}
	}
	finish := func() {
		for host, keys := range merged {
			m := make(map[string]any, len(keys))
			for k, v := range keys {
				m[k] = v.val
			}
			// Each table was decoded on its own already; the merge of
			// valid tables decodes.
			if h, ok := l.decodeHost(l.hosts[host], m, false); ok {
				out[host] = h.RegistryHost
			}
		}
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Hosts are taken in the order they appear in the file so that a
	// duplicate is reported at its second occurrence.
	type entry struct {
		path keyPath
		host string
		val  map[string]any
	}
	var entries []entry
	for _, k := range keys {
		if k == "config" {
			list, ok := raw[k].([]any)
			if !ok {
				l.fail(base.key("config"), "want [[registry.config]] entries (an array of tables), got %s", tomlKind(raw[k]))
				continue
			}
			for i, v := range list {
				p := base.key("config").at(i)
				m, ok := v.(map[string]any)
				if !ok {
					l.fail(p, "want a table, got %s", tomlKind(v))
					continue
				}
				entries = append(entries, entry{path: p, val: m})
			}
			continue
		}
		m, ok := raw[k].(map[string]any)
		if !ok {
			l.fail(base.key(k), "want a [registry.%s] table, got %s", quoteKey(k), tomlKind(raw[k]))
			continue
		}
		entries = append(entries, entry{path: base.key(k), host: k, val: m})
	}
	sort.SliceStable(entries, func(i, j int) bool { return l.pos.lineOf(entries[i].path) < l.pos.lineOf(entries[j].path) })
	for _, e := range entries {
		h, ok := l.decodeHost(e.path, e.val, e.host == "")
		if !ok {
			continue
		}
		host := e.host
		if host == "" {
			if h.Host == "" {
				l.fail(e.path.key("host"), "missing: each [[registry.config]] needs host = \"registry.example.com\"")
				continue
			}
			host = h.Host
		}
		add(e.path, host, e.val)
	}
	finish()
	return out
}

// tomlValue shows a TOML value in a message.
func tomlValue(v any) string {
	b, err := toml.Marshal(map[string]any{"v": v})
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(strings.TrimPrefix(string(b), "v = "))
}

// decodeHost decodes one registry table strictly by re-encoding it.
func (l *loader) decodeHost(p keyPath, m map[string]any, wantHost bool) (fileRegistryHost, bool) {
	var h fileRegistryHost
	if !wantHost {
		if _, ok := m["host"]; ok {
			l.fail(p.key("host"), "unknown key (the host is the table name, %s)", quoteKey(p[len(p)-1].name))
			return h, false
		}
	}
	b, err := toml.Marshal(m)
	if err != nil {
		l.fail(p, "%v", err)
		return h, false
	}
	err = toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields().Decode(&h)
	if err == nil {
		return h, true
	}
	var sm *toml.StrictMissingError
	var de *toml.DecodeError
	switch {
	case errors.As(err, &sm):
		for i := range sm.Errors {
			l.fail(l.subPath(p, sm.Errors[i].Key()), "unknown key")
		}
	case errors.As(err, &de):
		l.fail(l.subPath(p, de.Key()), "%s", typeMessage(stripToml(de.Error())))
	default:
		l.fail(p, "%v", err)
	}
	return h, false
}

// subPath maps a key inside a re-encoded registry table back to the
// document, finding the array index of keypair entries by line order.
func (l *loader) subPath(p keyPath, names []string) keyPath {
	q := p.key(names...)
	if len(names) > 1 && names[0] == "keypair" {
		for i := 0; ; i++ {
			c := p.key("keypair").at(i)
			if !l.pos.has(c) {
				break
			}
			if l.pos.has(c.key(names[1:]...)) {
				return c.key(names[1:]...)
			}
		}
	}
	return q
}

func stripToml(s string) string {
	const prefix = "toml: "
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):]
	}
	return s
}
