package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kiln-build/kiln/core/errdefs"
)

// source is the file a configuration was loaded from, for messages.
type source struct {
	file string
	pos  *positions
}

// Table is one [[cache.blob]] or [[cache.registry]] table with where it is
// in the file: what a cache backend reads its settings from. Its errors
// read like Load's: "kilnd.toml:12: [[cache.registry]] redis-addr: …".
type Table struct {
	// Keys are the table's keys as written, type included.
	Keys CacheTable
	path keyPath
	src  *source
}

// CacheTables returns the tables of [[cache.KIND]] ("blob" or
// "registry"), in file order, located in the file the configuration was
// loaded from.
func (c *Config) CacheTables(kind string) []Table {
	var list []CacheTable
	switch kind {
	case "blob":
		list = c.Cache.Blob
	case "registry":
		list = c.Cache.Registry
	}
	out := make([]Table, len(list))
	for i, t := range list {
		out[i] = Table{Keys: t, path: keyPath{}.key("cache", kind).at(i), src: c.src}
	}
	return out
}

// Type is the table's type key.
func (t Table) Type() string { return t.Keys.Type() }

// Header is the table's header as written: [[cache.registry]].
func (t Table) Header() string { return t.path.Header() }

// Errorf is an errdefs.ErrInvalidArgument error about key ("" for the
// table itself), with the file and the line that sets it (the table's
// header when the key is missing).
func (t Table) Errorf(key, format string, args ...any) error {
	p := t.path
	if key != "" {
		p = p.key(key)
	}
	return errdefs.WithClass(errdefs.ErrInvalidArgument, t.located(p, fmt.Errorf(format, args...)))
}

func (t Table) located(p keyPath, err error) error {
	key := p.Display()
	if len(p) == len(t.path) {
		key = t.Header()
	}
	se := &errdefs.SourceError{Err: &FieldError{Key: key, Err: err}}
	if t.src != nil {
		se.File, se.Range = t.src.file, lineRange(t.src.pos.lineOf(p))
	}
	return se
}

// Parser returns a parser of the table's keys other than type.
func (t Table) Parser() *TableParser {
	return &TableParser{t: t, fns: map[string]func(any) error{}}
}

// TableParser checks a Table's keys against the names bound to it, as
// internal/attrs does for --cache-to attributes: a backend binds its keys,
// then Parse applies the table and reports every problem at its line.
//
//	p := t.Parser()
//	p.String("path", &o.Path)
//	p.Duration("ttl", &o.TTL)
//	if err := p.Parse(); err != nil { ... }
type TableParser struct {
	t   Table
	fns map[string]func(any) error
}

// Table returns the table being parsed (for Errorf).
func (p *TableParser) Table() Table { return p.t }

// Func binds key to fn, which gets the value as TOML decoded it; its
// error is reported at the key's line.
func (p *TableParser) Func(key string, fn func(v any) error) { p.fns[key] = fn }

// String binds key to dst; the value must be a string.
func (p *TableParser) String(key string, dst *string) {
	p.StringFunc(key, func(s string) error {
		*dst = s
		return nil
	})
}

// StringFunc binds key to fn, which gets the value; the value must be a
// string.
func (p *TableParser) StringFunc(key string, fn func(s string) error) {
	p.fns[key] = func(v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("wrong type: want a string, got %s", tomlKind(v))
		}
		return fn(s)
	}
}

// Duration binds key to dst: seconds (172800) or a duration ("48h",
// "7d").
func (p *TableParser) Duration(key string, dst *time.Duration) {
	p.fns[key] = func(v any) error {
		d, err := durationOf(v)
		*dst = time.Duration(d)
		return err
	}
}

// Parse applies every key in file order. An unknown key or a bad value is
// an errdefs.ErrInvalidArgument error; all of them are reported, one line
// each.
func (p *TableParser) Parse() error {
	keys := slices.Collect(maps.Keys(p.t.Keys))
	line := func(k string) int {
		if p.t.src == nil {
			return 0
		}
		return p.t.src.pos.lineOf(p.t.path.key(k))
	}
	sort.Slice(keys, func(i, j int) bool {
		if li, lj := line(keys[i]), line(keys[j]); li != lj {
			return li < lj
		}
		return keys[i] < keys[j]
	})
	var errs []error
	for _, k := range keys {
		if k == "type" {
			continue
		}
		fn, ok := p.fns[k]
		if !ok {
			valid := slices.Sorted(maps.Keys(p.fns))
			errs = append(errs, p.t.located(p.t.path.key(k), fmt.Errorf("unknown key for type %q (valid: %s)", p.t.Type(), strings.Join(append([]string{"type"}, valid...), ", "))))
			continue
		}
		if err := fn(p.t.Keys[k]); err != nil {
			errs = append(errs, p.t.located(p.t.path.key(k), err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errdefs.WithClass(errdefs.ErrInvalidArgument, errors.Join(errs...))
}
