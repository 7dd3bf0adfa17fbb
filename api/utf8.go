package api

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// proto3 string fields must hold valid UTF-8: marshalling one that does
// not fails the whole message ("grpc: error while marshaling: string
// field contains invalid UTF-8"). Dockerfiles, file names and tool output
// need not be UTF-8, so the two ends make every message safe before it is
// sent: fields that must keep their bytes (file names, patterns) are
// bytes in control.proto, and the strings that are only shown (step
// names, errors, warnings) go through ValidUTF8.

// ValidUTF8 replaces, in place, each invalid byte sequence of every string
// field of m (nested messages, lists and map keys and values included)
// with U+FFFD, as Go's encoding/json and gRPC's status messages do. It
// reports whether it changed anything. Valid strings cost a scan and no
// allocation.
func ValidUTF8(m proto.Message) bool {
	if m == nil {
		return false
	}
	return fixMessage(m.ProtoReflect())
}

// InvalidUTF8Field returns the name of the first string field of m that is
// not valid UTF-8 ("build_args[NAME]", "tags[1]"), or "" if there is none:
// the client names it in its error instead of letting gRPC fail.
func InvalidUTF8Field(m proto.Message) string {
	if m == nil {
		return ""
	}
	return findInvalid(m.ProtoReflect(), "")
}

func fixString(s string) (string, bool) {
	if utf8.ValidString(s) {
		return s, false
	}
	return strings.ToValidUTF8(s, "\uFFFD"), true
}

func fixMessage(m protoreflect.Message) bool {
	changed := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			changed = fixMap(fd, v.Map()) || changed
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				switch fd.Kind() {
				case protoreflect.StringKind:
					if s, ok := fixString(l.Get(i).String()); ok {
						l.Set(i, protoreflect.ValueOfString(s))
						changed = true
					}
				case protoreflect.MessageKind, protoreflect.GroupKind:
					changed = fixMessage(l.Get(i).Message()) || changed
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if s, ok := fixString(v.String()); ok {
				m.Set(fd, protoreflect.ValueOfString(s))
				changed = true
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			changed = fixMessage(v.Message()) || changed
		}
		return true
	})
	return changed
}

func fixMap(fd protoreflect.FieldDescriptor, mp protoreflect.Map) bool {
	changed := false
	type entry struct {
		old protoreflect.MapKey
		key string
		val protoreflect.Value
	}
	var rekey []entry
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		switch fd.MapValue().Kind() {
		case protoreflect.StringKind:
			if s, ok := fixString(v.String()); ok {
				v = protoreflect.ValueOfString(s)
				mp.Set(k, v)
				changed = true
			}
		case protoreflect.MessageKind:
			changed = fixMessage(v.Message()) || changed
		}
		if fd.MapKey().Kind() == protoreflect.StringKind {
			if s, ok := fixString(k.String()); ok {
				rekey = append(rekey, entry{old: k, key: s, val: v})
			}
		}
		return true
	})
	for _, e := range rekey {
		mp.Clear(e.old)
		mp.Set(protoreflect.ValueOfString(e.key).MapKey(), e.val)
		changed = true
	}
	return changed
}

func findInvalid(m protoreflect.Message, prefix string) string {
	found := ""
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				at := name + "[" + strings.ToValidUTF8(k.String(), "\uFFFD") + "]"
				switch {
				case fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(k.String()):
					found = at
				case fd.MapValue().Kind() == protoreflect.StringKind && !utf8.ValidString(mv.String()):
					found = at
				case fd.MapValue().Kind() == protoreflect.MessageKind:
					found = findInvalid(mv.Message(), at+".")
				}
				return found == ""
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && found == ""; i++ {
				at := name + "[" + strconv.Itoa(i) + "]"
				switch fd.Kind() {
				case protoreflect.StringKind:
					if !utf8.ValidString(l.Get(i).String()) {
						found = at
					}
				case protoreflect.MessageKind, protoreflect.GroupKind:
					found = findInvalid(l.Get(i).Message(), at+".")
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if !utf8.ValidString(v.String()) {
				found = name
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			found = findInvalid(v.Message(), name+".")
		}
		return found == ""
	})
	return found
}
