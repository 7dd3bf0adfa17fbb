package config

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// masked replaces secrets in printed configurations.
const masked = "****"

// RedactURL returns s with the password of a URL (redis://user:pass@host)
// masked. Strings that are not URLs are returned unchanged.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return redactUserinfo(s)
	}
	if u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	u.User = url.UserPassword(u.User.Username(), masked)
	out := u.String()
	// url.String escapes the mask; keep it readable.
	if r, err := url.PathUnescape(out); err == nil {
		return r
	}
	return out
}

// Redacted returns a copy of c with every secret masked: registry
// passwords and passwords inside redis URLs.
func (c *Config) Redacted() *Config {
	out := *c
	out.Cache.Blob = redactTables(c.Cache.Blob)
	out.Cache.Registry = redactTables(c.Cache.Registry)
	out.Exporter.Plugin = append([]ExporterPlugin(nil), c.Exporter.Plugin...)
	for i, pl := range out.Exporter.Plugin {
		env := make([]string, len(pl.Env))
		for j, e := range pl.Env {
			env[j] = redactEnv(e)
		}
		out.Exporter.Plugin[i].Env = env
	}
	if c.Registry != nil {
		out.Registry = maps.Clone(c.Registry)
		for h, r := range out.Registry {
			if r.Password != "" {
				r.Password = masked
				out.Registry[h] = r
			}
		}
	}
	return &out
}

// WriteTOML writes the configuration as TOML with secrets masked, as
// `kilnd --validate` prints it.
func (c *Config) WriteTOML(w io.Writer) error {
	var v any = c.Redacted()
	if c.DebugAddress != "" {
		// The debug key is a table then (debug = true is already folded
		// into [log] level).
		v = struct {
			*Config
			Debug struct {
				Address string `toml:"address"`
			} `toml:"debug"`
		}{Config: c.Redacted(), Debug: struct {
			Address string `toml:"address"`
		}{c.DebugAddress}}
	}
	b, err := toml.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode configuration: %w", err)
	}
	_, err = w.Write(b)
	return err
}

// warn records the warnings for a loaded configuration.
func (l *loader) warn(c *Config) {
	add := func(p keyPath, msg string) {
		l.warns = append(l.warns, Warning{File: l.file, Line: l.pos.lineOf(p), Key: p.Display(), Message: msg})
	}
	for _, host := range sortedKeys(c.Registry) {
		h := c.Registry[host]
		if h.Password != "" {
			add(l.hostPath(host, "password").key("password"), fmt.Sprintf("plaintext password for %s in the config file; anyone who can read the file can use it (prefer config-file or a credential helper)", host))
		}
		if h.HTTP && h.Insecure {
			add(l.hostPath(host, "insecure").key("insecure"), "http and insecure are both set; http (plain HTTP) wins")
		}
	}
	if c.DebugAddress != "" {
		if host, _, err := net.SplitHostPort(c.DebugAddress); err == nil {
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				p := keyPath{}.key("debug", "address")
				if !l.pos.has(p) {
					p = keyPath{}.key("grpc", "debugAddress")
				}
				add(p, "the debug listener serves /debug/pprof (memory, goroutines, command line) to anyone who can reach "+c.DebugAddress+"; prefer 127.0.0.1")
			}
		}
	}
	for _, kind := range []string{"blob", "registry"} {
		for _, t := range c.CacheTables(kind) {
			for _, k := range sortedKeys(t.Keys) {
				if s, ok := t.Keys[k].(string); ok && hasPassword(s) {
					add(t.path.key(k), fmt.Sprintf("plaintext %s password in the config file; anyone who can read the file can use it", t.Type()))
				}
			}
		}
	}
}

// redactTables copies cache tables with the passwords inside URLs (a
// redis address) masked.
func redactTables(ts []CacheTable) []CacheTable {
	if ts == nil {
		return nil
	}
	out := make([]CacheTable, len(ts))
	for i, t := range ts {
		out[i] = maps.Clone(t)
		for k, v := range t {
			if s, ok := v.(string); ok && hasPassword(s) {
				out[i][k] = RedactURL(s)
			}
		}
	}
	return out
}

// hasPassword reports whether s is a URL with a password.
func hasPassword(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	return ok
}

// redactEnv masks the value of a KEY=VALUE entry: plugin settings are
// often tokens.
func redactEnv(e string) string {
	k, _, ok := strings.Cut(e, "=")
	if !ok {
		return masked
	}
	return k + "=" + masked
}

// redactUserinfo masks the password of scheme://user:password@host in a
// string that does not parse as a URL.
func redactUserinfo(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return s
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return s
	}
	return scheme + "://" + user + ":" + masked + rest[at:]
}
