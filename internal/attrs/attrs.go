// Package attrs parses the key=value attributes of a buildx-style option
// (--output type=image,name=app,push=true; --cache-to
// type=registry,ref=...,mode=max) into typed fields: the exporters and the
// remote caches bind their attributes with one Parser each, so a new
// attribute is one line and a misspelled one is an error that lists the
// right spellings.
//
// The rules are the same everywhere: a boolean given without a value
// ("push" or "push=") is true; a string given empty ("dest=") is as if it
// were not given, so the option's own "X is required" message applies.
//
//	p := attrs.New("type=oci", attrs)
//	p.String("dest", &o.Dest)
//	p.Bool("tar", &o.Tar)
//	if err := p.Parse(); err != nil { ... }
//
// It imports core/errdefs only.
package attrs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/core/errdefs"
)

// Parser checks one option's attributes against the names bound to it.
type Parser struct {
	prefix string
	attrs  map[string]string
	fns    map[string]func(string) error
	other  func(k, v string) (bool, error)
	valid  []string // what other accepts, for messages
}

// New returns a parser of attrs; prefix starts its messages ("type=image",
// "--cache-to type=registry").
func New(prefix string, attrs map[string]string) *Parser {
	return &Parser{prefix: prefix, attrs: attrs, fns: map[string]func(string) error{}}
}

// Func binds key to fn, which gets the value; an error from it names the
// attribute, unless it is an errdefs.ErrInvalidArgument error that says
// what is wrong on its own.
func (p *Parser) Func(key string, fn func(v string) error) { p.fns[key] = fn }

// String binds key to dst; an empty value leaves dst as it is.
func (p *Parser) String(key string, dst *string) {
	p.fns[key] = func(v string) error {
		if v != "" {
			*dst = v
		}
		return nil
	}
}

// Bool binds key to dst (see ParseBool).
func (p *Parser) Bool(key string, dst *bool) {
	p.fns[key] = func(v string) error {
		b, err := ParseBool(v)
		*dst = b
		return err
	}
}

// Other handles the attributes no name is bound to (annotation.*): fn
// reports whether it took the attribute. valid describes what it takes,
// for the unknown-attribute message.
func (p *Parser) Other(fn func(k, v string) (bool, error), valid ...string) {
	p.other, p.valid = fn, valid
}

// Errorf is an errdefs.ErrInvalidArgument error about the option.
func (p *Parser) Errorf(format string, args ...any) error {
	return errdefs.Invalidf("%s: "+format, append([]any{p.prefix}, args...)...)
}

// Parse applies every attribute, in key order. An unknown attribute or a
// bad value is an errdefs.ErrInvalidArgument error.
func (p *Parser) Parse() error {
	keys := make([]string, 0, len(p.attrs))
	for k := range p.attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := p.attrs[k]
		if fn, ok := p.fns[k]; ok {
			if err := fn(v); err != nil {
				if errdefs.IsInvalidArgument(err) {
					return fmt.Errorf("%s: %w", p.prefix, err)
				}
				return p.Errorf("%s=%s: %v", k, v, err)
			}
			continue
		}
		if p.other != nil {
			ok, err := p.other(k, v)
			if err != nil {
				return fmt.Errorf("%s: %w", p.prefix, err)
			}
			if ok {
				continue
			}
		}
		return p.Errorf("unknown attribute %q (valid: %s)", k, strings.Join(p.validKeys(), ", "))
	}
	return nil
}

func (p *Parser) validKeys() []string {
	keys := make([]string, 0, len(p.fns)+len(p.valid))
	for k := range p.fns {
		keys = append(keys, k)
	}
	keys = append(keys, p.valid...)
	sort.Strings(keys)
	return keys
}

// ParseBool reads a boolean attribute; a bare key (empty value) is true.
func ParseBool(v string) (bool, error) {
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("want true or false")
	}
	return b, nil
}
