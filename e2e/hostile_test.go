package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Hostile Dockerfiles: each fails (or builds) with a clear message, and
// the daemon stays healthy for the next build.

// peakRSS returns the daemon's peak resident set size in bytes (VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

func TestExpansionBombFailsFast(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	// The Dockerfile: 11 ARGs, each the one before it four times.
	var df strings.Builder
	df.WriteString("ARG a0=0123456789\n")
	for i := 1; i <= 11; i++ {
		p := fmt.Sprintf("${a%d}", i-1)
		fmt.Fprintf(&df, "ARG a%d=%s%s%s%s\n", i, p, p, p, p)
	}
	df.WriteString("FROM busybox\nRUN echo $a11\n")
	writeFiles(t, dir, map[string]string{"Dockerfile": df.String()})
	r := e.build(dir)
	if r.err == nil {
		t.Fatal("the expansion bomb built")
	}
	if want := "error: Dockerfile:10: ARG a9: failed to process"; !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "more than 1 MiB") {
		t.Errorf("output lacks %q and the limit:\n%s", want, r.stderr)
	}
	// kilnd idles at about 20 MiB; before the limit this build took it
	// past 700 MiB.
	if rss := peakRSS(t, e.d.Pid()); rss > 256<<20 {
		t.Errorf("kilnd's peak RSS is %d MiB", rss>>20)
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN echo fine\n"})
	if r := e.build(dir); r.err != nil {
		t.Fatalf("the build after the bomb: %v\n%s", r.err, r.stderr)
	}
}
