package graph

import (
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// encoding/json writes every invalid UTF-8 sequence as U+FFFD, so two ops
// that differ only in such bytes (COPY to "/caf\xe9" and to "/caf\xe8")
// would share a digest and so a cache key. Before the op is encoded for
// its digest, forDigestJSON rewrites each string that is not valid UTF-8,
// or that starts with the NUL byte used as the marker, as
// "\x00" + strconv.Quote(s). That is one to one, and leaves valid strings,
// and so every digest of valid text, as they were.

// escapeString is the rewrite of one string.
func escapeString(s string) (string, bool) {
	if utf8.ValidString(s) && !strings.HasPrefix(s, "\x00") {
		return s, false
	}
	return "\x00" + strconv.Quote(s), true
}

// needsEscape reports whether any string reachable from v (struct fields,
// pointers, slices, maps) needs escapeString.
func needsEscape(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		_, ok := escapeString(v.String())
		return ok
	case reflect.Pointer, reflect.Interface:
		return !v.IsNil() && needsEscape(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && needsEscape(v.Field(i)) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return false // bytes are base64 in JSON: exact already
		}
		for i := range v.Len() {
			if needsEscape(v.Index(i)) {
				return true
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if needsEscape(it.Key()) || needsEscape(it.Value()) {
				return true
			}
		}
	}
	return false
}

// escaped returns a deep copy of v with escapeString applied to every
// string; v itself is not modified.
func escaped(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.String:
		s, _ := escapeString(v.String())
		out := reflect.New(v.Type()).Elem()
		out.SetString(s)
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(escaped(v.Elem()))
		return out
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(escaped(v.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out.Field(i).Set(escaped(v.Field(i)))
			}
		}
		return out
	case reflect.Slice:
		if v.IsNil() || v.Type().Elem().Kind() == reflect.Uint8 {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(escaped(v.Index(i)))
		}
		return out
	case reflect.Array:
		out := reflect.New(v.Type()).Elem()
		for i := range v.Len() {
			out.Index(i).Set(escaped(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		it := v.MapRange()
		for it.Next() {
			out.SetMapIndex(escaped(it.Key()), escaped(it.Value()))
		}
		return out
	}
	return v
}

// forDigestJSON returns o ready for the JSON encoding its digest hashes:
// o itself unless a string in it needs escaping.
func forDigestJSON(o Op) Op {
	v := reflect.ValueOf(o)
	if !needsEscape(v) {
		return o
	}
	return escaped(v).Interface().(Op)
}
