package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/api"
)

func TestPrintImages(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	imgs := []*api.Image{
		{Name: "my-app:latest", Digest: "sha256:0123456789abcdef0123", Platforms: []string{"linux/amd64"}, Size: 2_345_678, Created: timestamppb.New(now.Add(-2 * time.Hour))},
		{Name: "reg.local:5000/team/app:1", Digest: "sha256:fedcba9876543210", Platforms: []string{"linux/amd64", "linux/arm64"}, Size: 512, Created: timestamppb.New(now.Add(-72 * time.Hour))},
	}
	tests := []struct {
		format string
		want   string
	}{
		{"", `REPOSITORY                TAG      DIGEST         PLATFORMS                 CREATED       SIZE
my-app                    latest   0123456789ab   linux/amd64               2 hours ago   2.35MB
reg.local:5000/team/app   1        fedcba987654   linux/amd64,linux/arm64   3 days ago    512B
`},
		{"{{.Repository}}|{{.Tag}}|{{.Size}}", "my-app|latest|2345678\nreg.local:5000/team/app|1|512\n"},
		{"json", `{"Repository":"my-app","Tag":"latest","Name":"my-app:latest","Digest":"sha256:0123456789abcdef0123","MediaType":"","Platforms":["linux/amd64"],"Created":"2026-01-02T13:00:00Z","Size":2345678}
{"Repository":"reg.local:5000/team/app","Tag":"1","Name":"reg.local:5000/team/app:1","Digest":"sha256:fedcba9876543210","MediaType":"","Platforms":["linux/amd64","linux/arm64"],"Created":"2025-12-30T15:00:00Z","Size":512}
`},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		if err := printImages(&b, imgs, tc.format, now); err != nil {
			t.Fatalf("format %q: %v", tc.format, err)
		}
		if diff := cmp.Diff(tc.want, b.String()); diff != "" {
			t.Errorf("format %q (-want +got):\n%s", tc.format, diff)
		}
	}
	if err := printImages(&bytes.Buffer{}, imgs, "{{.Nope", now); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("bad template: %v", err)
	}
}

func TestSplitName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][2]string{
		"app:latest":           {"app", "latest"},
		"reg:5000/app:1":       {"reg:5000/app", "1"},
		"reg:5000/app":         {"reg:5000/app", ""},
		"user/app:v1.2-rc":     {"user/app", "v1.2-rc"},
		"no-tag-at-all-really": {"no-tag-at-all-really", ""},
	} {
		repo, tag := splitName(in)
		if repo != want[0] || tag != want[1] {
			t.Errorf("splitName(%q) = %q, %q; want %q, %q", in, repo, tag, want[0], want[1])
		}
	}
}

func TestParseKeepDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "1.5d": 36 * time.Hour, "90m": 90 * time.Minute, "0": 0} {
		if got, err := parseKeepDuration(in); err != nil || got != want {
			t.Errorf("parseKeepDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"soon", "-1h", "d", "7x"} {
		if _, err := parseKeepDuration(in); err == nil {
			t.Errorf("parseKeepDuration(%q) succeeded", in)
		}
	}
}

func TestPrintUsageSummary(t *testing.T) {
	t.Parallel()
	recs := []*api.UsageRecord{
		{Type: "regular", Size: 1000},
		{Type: "regular", Size: 500, InUse: true},
		{Type: "blob", Size: 200, Shared: true},
		{Type: "blob", Size: 300},
		{Type: "source.local", Size: 10},
		{Type: "shared", Id: "redis redis://a:6379", Size: 4000, UsageCount: 7, Shared: true},
		{Type: "shared", Id: "redis redis://b:6379", Size: 9000, UsageCount: 3, Shared: true, InUse: true, PendingWrites: 2},
	}
	var b bytes.Buffer
	if err := printUsageSummary(&b, recs); err != nil {
		t.Fatal(err)
	}
	want := `TYPE                                 COUNT  SIZE    RECLAIMABLE
cache records                        2      1.5kB   1kB
snapshots                            0      0B      0B
blobs                                2      500B    300B
cache mounts                         0      0B      0B
contexts                             1      10B     10B
Total                                       2.01kB  1.31kB
shared cache (redis redis://a:6379)  7      4kB     -
shared cache (redis redis://b:6379)  3      9kB     -  (writing 2 more steps)
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	var p bytes.Buffer
	printPruneSummary(&p, recs[:3])
	if got := p.String(); got != "Removed 2 cache records, 1 blob\nTotal reclaimed: 1.7kB\n" {
		t.Errorf("prune summary %q", got)
	}
}
