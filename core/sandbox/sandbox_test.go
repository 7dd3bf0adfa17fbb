package sandbox

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHostIPs(t *testing.T) {
	t.Parallel()
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		in      []string
		want    []HostIP
		wantErr string
	}{
		{in: nil},
		{in: []string{"db:10.0.0.5", "cache=10.0.0.6"}, want: []HostIP{{Host: "db", IP: ip("10.0.0.5")}, {Host: "cache", IP: ip("10.0.0.6")}}},
		{in: []string{"v6:fd00::1", "v6b=[fd00::2]"}, want: []HostIP{{Host: "v6", IP: ip("fd00::1")}, {Host: "v6b", IP: ip("fd00::2")}}},
		{in: []string{"nohost"}, wantErr: `--add-host "nohost": want host:ip or host=ip`},
		{in: []string{"db:not-an-ip"}, wantErr: `--add-host "db:not-an-ip": "not-an-ip" is not an IP address`},
		{in: []string{":10.0.0.1"}, wantErr: `--add-host ":10.0.0.1": want host:ip or host=ip`},
	} {
		got, err := ParseHostIPs(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseHostIPs(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseHostIPs(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseHostIPs(%q) (-want +got):\n%s", tc.in, diff)
		}
		for _, h := range got {
			if !h.Valid() {
				t.Errorf("%+v is not Valid", h)
			}
		}
	}
}

// TestHostIPJSON: the op digests of RUN steps with extra hosts hash this
// form; it must not change.
func TestHostIPJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal([]HostIP{{Host: "db", IP: netip.MustParseAddr("10.0.0.5")}, {Host: "v6", IP: netip.MustParseAddr("fd00::1")}})
	if want := `[{"host":"db","ip":"10.0.0.5"},{"host":"v6","ip":"fd00::1"}]`; err != nil || string(b) != want {
		t.Errorf("JSON = %s, %v; want %s", b, err, want)
	}
	var back []HostIP
	if err := json.Unmarshal(b, &back); err != nil || len(back) != 2 || back[1].IP.String() != "fd00::1" {
		t.Errorf("decoded %+v, %v", back, err)
	}
	for _, bad := range []HostIP{{}, {Host: "a b", IP: netip.MustParseAddr("10.0.0.1")}, {Host: "x"}} {
		if bad.Valid() {
			t.Errorf("%+v is Valid", bad)
		}
	}
}

func TestParseModes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want NetMode
		ok   bool
	}{
		{"", NetDefault, true}, {"default", NetDefault, true}, {"none", NetNone, true}, {"host", NetHost, true},
		{"bridge", "", false}, {"HOST", "", false},
	} {
		if got, ok := ParseNetMode(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("ParseNetMode(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		in   string
		want SecurityMode
		ok   bool
	}{
		{"", SecuritySandbox, true}, {"sandbox", SecuritySandbox, true}, {"insecure", SecurityInsecure, true}, {"privileged", "", false},
	} {
		if got, ok := ParseSecurityMode(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("ParseSecurityMode(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if NetDefault.String() != "default" || NetHost.String() != "host" || SecuritySandbox.String() != "sandbox" || SecurityInsecure.String() != "insecure" {
		t.Error("String does not spell the modes as users do")
	}
}
