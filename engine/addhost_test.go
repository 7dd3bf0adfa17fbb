package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/graph"
)

func TestParseAddHosts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      []string
		want    []graph.HostIP
		wantErr string
	}{
		{in: nil},
		{in: []string{"db:10.0.0.5", "cache=10.0.0.6"}, want: []graph.HostIP{{Host: "db", IP: "10.0.0.5"}, {Host: "cache", IP: "10.0.0.6"}}},
		{in: []string{"v6:fd00::1", "v6b=[fd00::2]"}, want: []graph.HostIP{{Host: "v6", IP: "fd00::1"}, {Host: "v6b", IP: "fd00::2"}}},
		{in: []string{"nohost"}, wantErr: `--add-host "nohost": want host:ip or host=ip`},
		{in: []string{"db:not-an-ip"}, wantErr: `--add-host "db:not-an-ip": "not-an-ip" is not an IP address`},
		{in: []string{":10.0.0.1"}, wantErr: `--add-host ":10.0.0.1": want host:ip or host=ip`},
	} {
		got, err := ParseAddHosts(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseAddHosts(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAddHosts(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseAddHosts(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}
