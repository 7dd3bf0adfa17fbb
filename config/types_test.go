package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "123", want: 123},
		{in: "512MB", want: 512_000_000},
		{in: "10GB", want: 10_000_000_000},
		{in: "10gb", want: 10_000_000_000},
		{in: "1.5GB", want: 1_500_000_000},
		{in: "10GiB", want: 10 << 30},
		{in: "512Mi", want: 512 << 20},
		{in: "20 GB", want: 20_000_000_000},
		{in: "1k", want: 1000},
		{in: "7B", want: 7},
		{in: "10XB", wantErr: `bad size "10XB"`},
		{in: "GB", wantErr: `bad size "GB"`},
		{in: "", wantErr: `bad size ""`},
		{in: "-1GB", wantErr: "must not be negative"},
		{in: "1.5", wantErr: "not a whole number of bytes"},
		{in: "99999999999PB", wantErr: "too large"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSize(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", tt.in, int64(got), err, int64(tt.want))
		}
	}
}

func TestSizeString(t *testing.T) {
	t.Parallel()
	for s, want := range map[Size]string{
		0: "0", 10_000_000_000: "10GB", 512 << 20: "512MiB", 123: "123B", 1500: "1500B", 1_500_000: "1500KB",
	} {
		if got := s.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(s), got, want)
		}
		back, err := ParseSize(want)
		if err != nil || back != s {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", want, back, err, s)
		}
	}
}

func TestDurationOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      any
		want    time.Duration
		wantErr string
	}{
		{in: int64(172800), want: 48 * time.Hour},
		{in: "48h", want: 48 * time.Hour},
		{in: "90m", want: 90 * time.Minute},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "60", want: time.Minute},
		{in: "0", want: 0},
		{in: "forever", wantErr: `bad duration "forever"`},
		{in: int64(-1), wantErr: "must not be negative"},
		{in: "-5m", wantErr: "must not be negative"},
		{in: true, wantErr: "wrong type"},
	}
	for _, tt := range tests {
		got, err := durationOf(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("durationOf(%v) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || time.Duration(got) != tt.want {
			t.Errorf("durationOf(%v) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestDiskSpaceOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      any
		want    DiskSpace
		wantErr string
	}{
		{in: int64(512000000), want: DiskSpace{Bytes: 512_000_000}},
		{in: "512MB", want: DiskSpace{Bytes: 512_000_000}},
		{in: "10%", want: DiskSpace{Percent: 10}},
		{in: "101%", wantErr: "bad percentage"},
		{in: "x%", wantErr: "bad percentage"},
		{in: 1.5, wantErr: "wrong type"},
	}
	for _, tt := range tests {
		got, err := diskSpaceOf(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("diskSpaceOf(%v) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("diskSpaceOf(%v) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseIDMap(t *testing.T) {
	t.Parallel()
	got, err := ParseIDMap("0:100000:65536, 65536:300000:1")
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}, {ContainerID: 65536, HostID: 300000, Size: 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for in, wantErr := range map[string]string{
		"":                        "empty map",
		"0:100000":                `bad range "0:100000"`,
		"0:x:1":                   `"x" is not a number`,
		"0:1:0":                   "size must be at least 1",
		"0:4294967295:2":          "range goes past",
		"0:100000:65536,1:2":      `bad range "1:2"`,
		"-1:100000:65536":         `"-1" is not a number`,
		"0:100000:65536:7":        "want container:host:size",
		"4294967296:100000:65536": "is not a number",
	} {
		if _, err := ParseIDMap(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseIDMap(%q) error = %v, want it to contain %q", in, err, wantErr)
		}
	}
}

func TestParseAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, network, addr, wantErr string
	}{
		{in: "unix:///run/kiln/kilnd.sock", network: "unix", addr: "/run/kiln/kilnd.sock"},
		{in: "tcp://127.0.0.1:1234", network: "tcp", addr: "127.0.0.1:1234"},
		{in: "tcp://[::1]:0", network: "tcp", addr: "[::1]:0"},
		{in: "tcp://:1234", network: "tcp", addr: ":1234"},
		{in: "http://0.0.0.0:1234", wantErr: `unsupported scheme "http://"`},
		{in: "/run/kiln/kilnd.sock", wantErr: "want unix:///path/to/socket or tcp://host:port"},
		{in: "unix://relative.sock", wantErr: "needs an absolute path"},
		{in: "tcp://localhost", wantErr: "want tcp://host:port"},
		{in: "tcp://localhost:http", wantErr: `port "http" is not a number`},
		{in: "tcp://localhost:1234/x", wantErr: "want tcp://host:port"},
	}
	for _, tt := range tests {
		n, a, err := ParseAddress(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseAddress(%q) = %q, %q, %v; want error containing %q", tt.in, n, a, err, tt.wantErr)
			}
			continue
		}
		if err != nil || n != tt.network || a != tt.addr {
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want %q, %q", tt.in, n, a, err, tt.network, tt.addr)
		}
	}
}

func TestKeyPathDisplay(t *testing.T) {
	t.Parallel()
	for want, p := range map[string]keyPath{
		"root":                                 keyPath{}.key("root"),
		"[grpc] address":                       keyPath{}.key("grpc", "address").at(2),
		"[[cache.registry]] type":              keyPath{}.key("cache", "registry").at(1).key("type"),
		`[registry."docker.io"] mirrors`:       keyPath{}.key("registry", "docker.io", "mirrors"),
		`[[registry."docker.io".keypair]] key`: keyPath{}.key("registry", "docker.io", "keypair").at(0).key("key"),
	} {
		if got := p.Display(); got != want {
			t.Errorf("Display(%s) = %q, want %q", p, got, want)
		}
	}
}

func TestIndexPositions(t *testing.T) {
	t.Parallel()
	doc := "a = 1\n[[t]]\nx = 1\n[[t]]\nx = 2\n[t.sub]\ny = [\n 1,\n 2,\n]\n[\"q.r\"]\nz = { w = 1 }\n"
	ps := indexPositions([]byte(doc))
	for path, want := range map[string]int{
		"a": 1, "t[0]": 2, "t[0].x": 3, "t[1]": 4, "t[1].x": 5, "t[1].sub": 6, "t[1].sub.y": 7,
		"t[1].sub.y[0]": 8, "t[1].sub.y[1]": 9, `"q.r".z`: 12, `"q.r".z.w`: 12,
	} {
		if got := ps.lines[path]; got != want {
			t.Errorf("line of %s = %d, want %d", path, got, want)
		}
	}
	if indexPositions([]byte("a = \n")) != nil {
		t.Error("a document that does not parse has an index")
	}
}
