package instructions

import (
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// MountType is the type= of a RUN --mount.
type MountType string

// The mount types.
const (
	MountBind   MountType = "bind"
	MountCache  MountType = "cache"
	MountTmpfs  MountType = "tmpfs"
	MountSecret MountType = "secret"
	MountSSH    MountType = "ssh"
)

// Sharing is the sharing= mode of a cache mount.
type Sharing string

// The cache sharing modes.
const (
	SharingShared  Sharing = "shared"
	SharingPrivate Sharing = "private"
	SharingLocked  Sharing = "locked"
)

// Mount is one RUN --mount, with the defaults of its type applied:
//
//	bind    read-only unless rw; Source defaults to the root of From (or the context)
//	cache   read-write; ID defaults to Target; Sharing defaults to shared
//	tmpfs   read-write; Size 0 means no limit
//	secret  read-only; ID defaults to the base name of Target, Target to
//	        /run/secrets/<ID> unless only Env is wanted
//	ssh     read-only; ID defaults to "default"; Target "" means the
//	        converter picks the agent socket path
type Mount struct {
	// Raw is the flag value as written.
	Raw      string
	Type     MountType
	Target   string
	Source   string
	From     string
	ReadOnly bool
	// ID is the cache, secret or ssh id.
	ID      string
	Sharing Sharing
	// Required makes a missing secret or ssh agent an error.
	Required bool
	// Env is the variable a secret is exposed as (secret only).
	Env string
	// Mode, UID and GID are the owner and mode of the mount point or
	// secret file (cache, secret, ssh only); nil when not given.
	Mode *uint32
	UID  *uint32
	GID  *uint32
	// Size is the tmpfs size limit in bytes, 0 for none.
	Size int64
}

// mountKeys lists the keys each mount type takes, beyond type= and the
// target aliases.
var mountKeys = map[MountType][]string{
	MountBind:   {"source", "src", "from", "readonly", "ro", "readwrite", "rw"},
	MountCache:  {"id", "source", "src", "from", "readonly", "ro", "readwrite", "rw", "sharing", "mode", "uid", "gid"},
	MountTmpfs:  {"size", "readonly", "ro", "readwrite", "rw"},
	MountSecret: {"id", "source", "src", "env", "required", "mode", "uid", "gid"},
	MountSSH:    {"id", "required", "mode", "uid", "gid"},
}

var allMountKeys = []string{"type", "target", "dst", "destination", "source", "src", "from", "readonly", "ro",
	"readwrite", "rw", "id", "sharing", "required", "env", "mode", "uid", "gid", "size"}

var reVariable = regexp.MustCompile(`\$[\p{L}\p{N}_{@*#?!$-]`)

// hasVariable reports whether s refers to a variable, so that checking its
// value must wait until it is expanded.
func hasVariable(s string) bool { return reVariable.MatchString(s) }

// parseMount parses one --mount value. With expand nil (at parse time),
// values that refer to variables are kept as written and checked only
// when the command is expanded.
func parseMount(raw string, expand func(string) (string, error)) (*Mount, error) {
	r := csv.NewReader(strings.NewReader(raw))
	fields, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("cannot parse it as comma-separated key=value fields: %w", err)
	}
	m := &Mount{Raw: raw, Type: MountBind}
	// type= decides which keys are allowed, wherever it appears.
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "type") {
			t := MountType(strings.ToLower(v))
			if _, known := mountKeys[t]; !known {
				return nil, suggestError(fmt.Sprintf("unsupported mount type %q", v), v, []string{"bind", "cache", "secret", "ssh", "tmpfs"})
			}
			m.Type = t
		}
	}
	roSet := false
	for _, f := range fields {
		k, v, hasValue := strings.Cut(f, "=")
		key := strings.ToLower(strings.TrimSpace(k))
		if key == "type" {
			continue
		}
		if !isMountKey(key) {
			return nil, suggestError(fmt.Sprintf("unexpected key %q in %q", key, f), key, allMountKeys)
		}
		if !allowedFor(m.Type, key) {
			return nil, fmt.Errorf("unexpected key %q for mount type %q", key, m.Type)
		}
		if !hasValue {
			switch key {
			case "readonly", "ro", "readwrite", "rw", "required":
				v = "true"
			default:
				return nil, fmt.Errorf("invalid field %q: it must be a key=value pair", f)
			}
		}
		if key == "from" {
			if hasVariable(v) {
				return nil, errors.New("'from' doesn't support variable expansion, define alias stage instead")
			}
		} else if expand != nil {
			if v, err = expand(v); err != nil {
				return nil, err
			}
		} else if hasVariable(v) {
			setDeferred(m, key, v)
			continue
		}
		if err := setMountKey(m, key, v); err != nil {
			return nil, err
		}
		if key == "readonly" || key == "ro" || key == "readwrite" || key == "rw" {
			roSet = true
		}
	}
	if err := finishMount(m, roSet); err != nil {
		return nil, err
	}
	return m, nil
}

func isMountKey(key string) bool {
	for _, k := range allMountKeys {
		if k == key {
			return true
		}
	}
	return false
}

func allowedFor(t MountType, key string) bool {
	switch key {
	case "target", "dst", "destination":
		return true
	}
	for _, k := range mountKeys[t] {
		if k == key {
			return true
		}
	}
	return false
}

// setDeferred stores a value that still holds a variable in its string
// field, so that defaults derived from it stay right until Expand.
func setDeferred(m *Mount, key, v string) {
	switch key {
	case "target", "dst", "destination":
		m.Target = v
	case "source", "src":
		m.Source = v
	case "id":
		m.ID = v
	case "env":
		m.Env = v
	}
}

func setMountKey(m *Mount, key, v string) error {
	var err error
	switch key {
	case "target", "dst", "destination":
		m.Target = v
	case "source", "src":
		m.Source = v
	case "from":
		m.From = v
	case "id":
		m.ID = v
	case "env":
		m.Env = v
	case "readonly", "ro", "readwrite", "rw", "required":
		b, perr := strconv.ParseBool(v)
		if perr != nil {
			return fmt.Errorf("invalid value %q for %s: want true or false", v, key)
		}
		switch key {
		case "required":
			m.Required = b
		case "readonly", "ro":
			m.ReadOnly = b
		default:
			m.ReadOnly = !b
		}
	case "sharing":
		s := Sharing(strings.ToLower(v))
		if s != SharingShared && s != SharingPrivate && s != SharingLocked {
			return suggestError(fmt.Sprintf("unsupported sharing value %q", v), v, []string{"locked", "private", "shared"})
		}
		m.Sharing = s
	case "mode":
		mode, perr := strconv.ParseUint(v, 8, 32)
		if perr != nil || mode > 07777 {
			return fmt.Errorf("invalid value %q for mode: want an octal mode such as 0600", v)
		}
		m.Mode = uint32Ptr(mode)
	case "uid", "gid":
		id, perr := strconv.ParseUint(v, 10, 32)
		if perr != nil {
			return fmt.Errorf("invalid value %q for %s: want a number", v, key)
		}
		if key == "uid" {
			m.UID = uint32Ptr(id)
		} else {
			m.GID = uint32Ptr(id)
		}
	case "size":
		m.Size, err = parseSize(v)
		if err != nil {
			return fmt.Errorf("invalid value %q for size: %w", v, err)
		}
	}
	return nil
}

func uint32Ptr(v uint64) *uint32 {
	u := uint32(v)
	return &u
}

// finishMount applies the defaults of the mount's type and checks what
// must be set.
func finishMount(m *Mount, roSet bool) error {
	if !roSet {
		m.ReadOnly = m.Type == MountBind || m.Type == MountSecret || m.Type == MountSSH
	}
	switch m.Type {
	case MountBind, MountCache, MountTmpfs:
		if m.Target == "" {
			return fmt.Errorf("target is required for a %s mount (add target=/path)", m.Type)
		}
	}
	switch m.Type {
	case MountCache:
		if m.ID == "" {
			m.ID = m.Target
		}
		if m.Sharing == "" {
			m.Sharing = SharingShared
		}
	case MountSecret:
		if m.ID != "" && m.Source != "" {
			return errors.New("both source and id can't be set for a secret mount (they are the same)")
		}
		if m.ID == "" {
			m.ID = m.Source
		}
		m.Source = ""
		if m.ID == "" && m.Target != "" {
			m.ID = path.Base(m.Target)
		}
		if m.ID == "" {
			return errors.New("a secret mount needs an id (or a target to derive it from)")
		}
		if m.Target == "" && m.Env == "" {
			m.Target = "/run/secrets/" + m.ID
		}
	case MountSSH:
		if m.ID == "" {
			m.ID = "default"
		}
	}
	return nil
}

// suggestError formats msg with a "did you mean" hint when word is close to
// one of candidates.
func suggestError(msg, word string, candidates []string) error {
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	if s, ok := suggest(word, sorted); ok {
		return fmt.Errorf("%s (did you mean %s?)", msg, s)
	}
	return errors.New(msg)
}

// parseSize parses a size such as "64m", "1.5GiB" or "1024" into bytes,
// with binary multiples (k = 1024). Re-implemented: a few lines, and
// go-units is not among our modules.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := float64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("kmgtp", t[n-1]); i >= 0 {
			for range i + 1 {
				mult *= 1024
			}
			t = strings.TrimSpace(t[:n-1])
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v*mult > 1<<62 {
		return 0, errors.New("want a size such as 64m or 1g")
	}
	return int64(v * mult), nil
}
