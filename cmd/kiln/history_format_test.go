package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/api"
)

var histT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(histT0.Add(d)) }

// failedRecord is a build whose third step failed after printing.
func failedRecord() *api.BuildRecord {
	return &api.BuildRecord{
		Ref: "k4r9f0wz2m1q", Status: "failed", Created: ts(0), Completed: ts(2500 * time.Millisecond),
		Steps: 3, Cached: 1, DockerfileName: "Dockerfile", Target: "app",
		Error: `process "/bin/sh -c make" did not complete successfully: exit code: 2`,
		Trace: []*api.BuildStep{
			{Digest: "sha256:a", Name: "[internal] load build definition from Dockerfile", Started: ts(0), Completed: ts(100 * time.Millisecond)},
			{Digest: "sha256:b", Name: "[1/2] FROM busybox", Started: ts(100 * time.Millisecond), Completed: ts(100 * time.Millisecond), Cached: true},
			{Digest: "sha256:c", Name: "[2/2] RUN make", Started: ts(time.Second), Completed: ts(2400 * time.Millisecond),
				Error: `process "/bin/sh -c make" did not complete successfully: exit code: 2`, LogsDropped: 4,
				Logs: []*api.BuildLogLine{
					{AtNs: int64(1200 * time.Millisecond), Stream: 2, Text: []byte("make: *** no rule")},
					{AtNs: int64(200 * time.Millisecond), Stream: 1, Text: []byte("cc -o app main.c")},
				}},
		},
	}
}

func TestPrintHistory(t *testing.T) {
	ok := &api.BuildRecord{Ref: "p2s8", Status: "completed", Created: ts(-time.Hour), Completed: ts(-time.Hour + 75*time.Second)}
	recs := []*api.BuildRecord{failedRecord(), ok}
	now := histT0.Add(3 * time.Minute)
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{"", []string{
			"BUILD ID       NAME               STATUS      CREATED AT          DURATION",
			"k4r9f0wz2m1q   Dockerfile (app)   Error       3 minutes ago       2.5s",
			"p2s8           Dockerfile         Completed   About an hour ago   1m 15s",
		}},
	} {
		t.Run("table", func(t *testing.T) {
			var b bytes.Buffer
			if err := printHistory(&b, recs, tc.format, now); err != nil {
				t.Fatal(err)
			}
			if got, want := strings.TrimRight(b.String(), "\n"), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		var b bytes.Buffer
		if err := printHistory(&b, recs, "json", now); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		var row historyRow
		if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &row) != nil || row.Ref != "k4r9f0wz2m1q" || row.Status != "failed" || row.Duration != 2.5 || row.Steps != 3 {
			t.Errorf("json:\n%s", b.String())
		}
	})
	t.Run("bad format", func(t *testing.T) {
		if err := printHistory(&bytes.Buffer{}, recs, "yaml", now); err == nil || !strings.Contains(err.Error(), `--format "yaml"`) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestPrintBuildInspect(t *testing.T) {
	var b bytes.Buffer
	if err := printBuildInspect(&b, failedRecord(), "kiln"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Dockerfile:  Dockerfile\n",
		"Target:      app\n",
		"Status:      Error\n",
		"Duration:    2.5s\n",
		"Build Steps: 3 (33% cached)\n",
		"\nError:\tprocess \"/bin/sh -c make\" did not complete successfully: exit code: 2\n",
		"  #   NAME                                              STATUS  DURATION\n",
		"  #1  [internal] load build definition from Dockerfile  DONE    0.1s\n",
		"  #2  [1/2] FROM busybox                                CACHED  0.0s\n",
		"  #3  [2/2] RUN make                                    ERROR   1.4s\n",
		"\nPrint build logs: kiln history logs k4r9f0wz2m1q\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
}

func TestSelectStep(t *testing.T) {
	trace := failedRecord().GetTrace()
	for _, tc := range []struct {
		sel     string
		want    int
		wantErr string
	}{
		{"3", 2, ""},
		{"#1", 0, ""},
		{"[1/2] FROM busybox", 1, ""},
		{"RUN make", 2, ""},
		{"0", 0, "--step 0: the build has steps #1 to #3"},
		{"RUN nothing", 0, `--step "RUN nothing": no step of the build has that name`},
		{"/2]", 0, `--step "/2]" names 2 steps: #2 [1/2] FROM busybox; #3 [2/2] RUN make`},
	} {
		t.Run(tc.sel, func(t *testing.T) {
			got, err := selectStep(trace, tc.sel)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("selectStep = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestPrintLogs(t *testing.T) {
	for _, tc := range []struct {
		name string
		only int
		want string
	}{
		{"all", -1, `
#1 [internal] load build definition from Dockerfile
#1 DONE 0.1s

#2 [1/2] FROM busybox
#2 CACHED

#3 [2/2] RUN make
#3 0.000 [4 earlier lines not kept]
#3 0.200 cc -o app main.c
#3 1.200 make: *** no rule
#3 ERROR: process "/bin/sh -c make" did not complete successfully: exit code: 2
`},
		{"one step keeps its number", 2, `
#3 [2/2] RUN make
#3 0.000 [4 earlier lines not kept]
#3 0.200 cc -o app main.c
#3 1.200 make: *** no rule
#3 ERROR: process "/bin/sh -c make" did not complete successfully: exit code: 2
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printLogs(&b, failedRecord().GetTrace(), tc.only); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		300 * time.Millisecond: "0.3s", 59 * time.Second: "59.0s", 64 * time.Second: "1m  4s", 2*time.Hour + 5*time.Minute: "2h  5m",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestPrintBuildInspectUsage: steps that ran a container show their CPU
// time, peak memory and I/O; the critical path is named and its steps
// marked.
func TestPrintBuildInspectUsage(t *testing.T) {
	r := failedRecord()
	r.CriticalPathNs = int64(1500 * time.Millisecond)
	r.Trace[0].Critical, r.Trace[2].Critical = true, true
	r.Trace[2].Usage = &api.StepUsage{CpuNs: int64(1200 * time.Millisecond), MemoryPeak: 64 << 20, IoRead: 4096, IoWrite: 1 << 20}
	var b strings.Builder
	if err := printBuildInspect(&b, r, "kiln"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Status:      Error\n",
		"\nSteps (critical path 1.5s, marked *):\n",
		"  #   NAME                                              STATUS  DURATION  CPU   MEMORY  IO (R/W)\n",
		"  #1  [internal] load build definition from Dockerfile  DONE    0.1s *    -     -       -\n",
		"  #3  [2/2] RUN make                                    ERROR   1.4s *    1.2s  67.1MB  4.1kB/1.05MB\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
}
