package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// HostEnv describes the running process: its effective uid, CPUs and
// environment variables.
func HostEnv() Env {
	return Env{UID: os.Geteuid(), Getenv: os.Getenv}
}

func itoa(i int) string { return strconv.Itoa(i) }

// Size is a number of bytes. In TOML it is an integer (bytes) or a string
// with a unit: "512MB", "10GB" (powers of 1000) or "512MiB", "10GiB"
// (powers of 1024).
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40}, {"pib", 1 << 50},
	{"ki", 1 << 10}, {"mi", 1 << 20}, {"gi", 1 << 30}, {"ti", 1 << 40}, {"pi", 1 << 50},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"pb", 1e15},
	{"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"t", 1e12}, {"p", 1e15},
	{"b", 1},
}

const sizeHint = `want bytes (10000000000) or a number with a unit ("512MB", "10GB", "10GiB")`

// ParseSize parses "10GB", "512MiB", "1.5GB" or "123" (bytes).
func ParseSize(s string) (Size, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	if t == "" {
		return 0, fmt.Errorf("bad size %q: %s", s, sizeHint)
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("bad size %q: %s", s, sizeHint)
	}
	if f < 0 {
		return 0, fmt.Errorf("bad size %q: must not be negative", s)
	}
	v := f * mult
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("bad size %q: too large", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("bad size %q: not a whole number of bytes", s)
	}
	return Size(v), nil
}

// String renders the size with the largest unit that divides it exactly:
// "10GB", "512MiB", "123B".
func (s Size) String() string {
	if s == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		mult int64
	}{
		{"PB", 1e15}, {"PiB", 1 << 50}, {"TB", 1e12}, {"TiB", 1 << 40},
		{"GB", 1e9}, {"GiB", 1 << 30}, {"MB", 1e6}, {"MiB", 1 << 20},
		{"KB", 1e3}, {"KiB", 1 << 10},
	} {
		if int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// MarshalText writes the size in String form.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the String form.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// sizeOf converts a decoded TOML value (integer bytes or string) to a Size.
func sizeOf(v any) (Size, error) {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("bad size %d: must not be negative", x)
		}
		return Size(x), nil
	case string:
		return ParseSize(x)
	default:
		return 0, fmt.Errorf("wrong type: %s, got %s", sizeHint, tomlKind(v))
	}
}

// DiskSpace is an amount of disk: bytes, or a percentage of the disk that
// holds the root directory. In TOML: 512000000, "512MB" or "10%".
type DiskSpace struct {
	Bytes   Size
	Percent int // 1-100; used when Bytes is 0
}

// IsZero reports whether no space is set.
func (d DiskSpace) IsZero() bool { return d.Bytes == 0 && d.Percent == 0 }

// String renders "10%" or the size.
func (d DiskSpace) String() string {
	if d.Percent != 0 {
		return strconv.Itoa(d.Percent) + "%"
	}
	return d.Bytes.String()
}

// MarshalText writes the String form.
func (d DiskSpace) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads the String form.
func (d *DiskSpace) UnmarshalText(b []byte) error {
	v, err := diskSpaceOf(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func diskSpaceOf(v any) (DiskSpace, error) {
	if s, ok := v.(string); ok && strings.HasSuffix(strings.TrimSpace(s), "%") {
		p, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%")))
		if err != nil || p < 0 || p > 100 {
			return DiskSpace{}, fmt.Errorf("bad percentage %q: want a whole number from 0%% to 100%%", s)
		}
		return DiskSpace{Percent: p}, nil
	}
	if _, ok := v.(string); !ok {
		if _, ok := v.(int64); !ok {
			return DiskSpace{}, fmt.Errorf(`wrong type: want bytes (512000000), a size ("512MB") or a percentage ("10%%"), got %s`, tomlKind(v))
		}
	}
	b, err := sizeOf(v)
	if err != nil {
		return DiskSpace{}, err
	}
	return DiskSpace{Bytes: b}, nil
}

// Duration is a length of time. In TOML: an integer number of seconds
// (172800) or a string ("48h", "90m", "7d").
type Duration time.Duration

// String renders the duration as Go does ("48h0m0s"), with "0" for zero.
func (d Duration) String() string {
	if d == 0 {
		return "0"
	}
	return time.Duration(d).String()
}

// MarshalText writes the String form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads "48h", "7d" or a number of seconds.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := durationOf(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

const durationHint = `want seconds (172800) or a duration ("48h", "90m", "7d")`

func durationOf(v any) (Duration, error) {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("bad duration %d: must not be negative", x)
		}
		if x > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("bad duration %d: too large", x)
		}
		return Duration(time.Duration(x) * time.Second), nil
	case string:
		s := strings.TrimSpace(x)
		if s == "0" {
			return 0, nil
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return durationOf(n)
		}
		if days, ok := strings.CutSuffix(s, "d"); ok {
			n, err := strconv.ParseFloat(days, 64)
			if err != nil || n < 0 || n > 100*365 {
				return 0, fmt.Errorf("bad duration %q: %s", x, durationHint)
			}
			return Duration(time.Duration(n * 24 * float64(time.Hour))), nil
		}
		t, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: %s", x, durationHint)
		}
		if t < 0 {
			return 0, fmt.Errorf("bad duration %q: must not be negative", x)
		}
		return Duration(t), nil
	default:
		return 0, fmt.Errorf("wrong type: %s, got %s", durationHint, tomlKind(v))
	}
}

// ParseIDMap parses "container:host:size" ranges separated by commas, as
// in [rootless] uid-map, into runtime-spec ID mappings.
func ParseIDMap(s string) ([]specs.LinuxIDMapping, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty map: want container:host:size, e.g. 0:100000:65536")
	}
	var out []specs.LinuxIDMapping
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("bad range %q: want container:host:size, e.g. 0:100000:65536", strings.TrimSpace(part))
		}
		var n [3]uint32
		for i, x := range f {
			v, err := strconv.ParseUint(strings.TrimSpace(x), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("bad range %q: %q is not a number from 0 to 4294967295", strings.TrimSpace(part), x)
			}
			n[i] = uint32(v)
		}
		if n[2] == 0 {
			return nil, fmt.Errorf("bad range %q: size must be at least 1", strings.TrimSpace(part))
		}
		if uint64(n[0])+uint64(n[2]) > 1<<32 || uint64(n[1])+uint64(n[2]) > 1<<32 {
			return nil, fmt.Errorf("bad range %q: range goes past 4294967295", strings.TrimSpace(part))
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: n[0], HostID: n[1], Size: n[2]})
	}
	return out, nil
}

// tomlKind names the TOML type of a decoded value for messages.
func tomlKind(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date or time"
	}
}

// percentOf reads a percentage given as a number (10 or 12.5).
func percentOf(v any) (float64, error) {
	var f float64
	switch n := v.(type) {
	case int64:
		f = float64(n)
	case float64:
		f = n
	default:
		return 0, fmt.Errorf("wrong type: want a percentage from 0 to 100 (e.g. 50), got %s", tomlKind(v))
	}
	if f < 0 || f > 100 {
		return 0, fmt.Errorf("%v is out of range: want a percentage from 0 to 100 (0 turns the check off)", v)
	}
	return f, nil
}
