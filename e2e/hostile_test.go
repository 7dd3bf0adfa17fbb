package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
	// The next build works, and warns about a build arg named like a
	// secret (SecretsUsedInArgOrEnv) at its line.
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nARG NPM_TOKEN\nRUN echo fine\n"})
	r = e.build(dir)
	if r.err != nil {
		t.Fatalf("the build after the bomb: %v\n%s", r.err, r.stderr)
	}
	want := `{"warning":{"message":"Dockerfile:2: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"NPM_TOKEN\")","location":"Dockerfile:2"}}`
	if !strings.Contains(r.stderr, want) {
		t.Errorf("no secret warning %s in:\n%s", want, r.stderr)
	}
}

// TestInvalidUTF8Dockerfile builds a Dockerfile whose RUN, LABEL and COPY
// lines hold bytes that are not UTF-8, with a context file whose name is
// not UTF-8 either. Kiln passes the bytes through as Docker does: file
// names and heredoc bodies keep them exactly; the image config and the
// OCI runtime spec are JSON, where (for Docker and BuildKit too) an
// invalid byte reads as U+FFFD. Nothing fails with gRPC's "string field
// contains invalid UTF-8".
func TestInvalidUTF8Dockerfile(t *testing.T) {
	e := newBldEnv(t)
	dir, out := t.TempDir(), t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM busybox\n" +
			"LABEL note=\"a\xffb\"\n" +
			"RUN echo \"x\xfey\" > /run.txt\n" +
			"COPY caf\xe9.txt /copied/\n" +
			"COPY <<EOF /heredoc.txt\nh\xfei\nEOF\n" +
			"RUN echo \"caf\xe9\" && false\n",
		"caf\xe9.txt": "latin-1 name",
	})
	// The last RUN fails: its error and step name carry the bytes too.
	r := e.build(dir)
	if r.err == nil {
		t.Fatal("the failing RUN built")
	}
	if strings.Contains(r.stderr, "invalid UTF-8") || !strings.Contains(r.stderr, "error: Dockerfile:8: [5/5] RUN echo \"caf\uFFFD\" && false") {
		t.Fatalf("failed build's output:\n%s", r.stderr)
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": strings.Replace(readFile(t, filepath.Join(dir, "Dockerfile")), " && false", "", 1)})
	if r := e.build(dir, "-t", "utf8", "-o", "type=local,dest="+out); r.err != nil {
		t.Fatalf("build: %v\n%s", r.err, r.stderr)
	}
	for name, want := range map[string]string{
		"copied/caf\xe9.txt": "latin-1 name",
		"heredoc.txt":        "h\xfei\n",
		"run.txt":            "x\uFFFDy\n", // through runc's JSON spec, as with Docker
	} {
		if got := readFile(t, filepath.Join(out, name)); got != want {
			t.Errorf("%q = %q, want %q", name, got, want)
		}
	}
	if r := e.build(dir, "-t", "utf8"); r.err != nil {
		t.Fatalf("build to the store: %v\n%s", r.err, r.stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := e.kilnCmd(ctx, "image", "inspect", "--format", "{{index .Config.config.Labels \"note\"}}", "utf8").CombinedOutput()
	if err != nil || strings.TrimSpace(string(b)) != "a\uFFFDb" {
		t.Errorf("label: %q, %v", b, err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSourceDateEpochFromEnvironment: SOURCE_DATE_EPOCH in kiln's
// environment makes the same image as --build-arg SOURCE_DATE_EPOCH.
func TestSourceDateEpochFromEnvironment(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN echo hi > /hi\n"})
	id := func(env []string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		iid := filepath.Join(t.TempDir(), "iid")
		cmd := e.kilnCmd(ctx, append(append([]string{"build", "--progress", "quiet", "--iidfile", iid, "-o", "type=oci,dest=" + filepath.Join(t.TempDir(), "o.tar")}, args...), dir)...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %v %v: %v\n%s", env, args, err, out)
		}
		return readFile(t, iid)
	}
	none := id([]string{"SOURCE_DATE_EPOCH="})
	fromArg := id(nil, "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
	fromEnv := id([]string{"SOURCE_DATE_EPOCH=1700000000"})
	if fromEnv != fromArg {
		t.Errorf("SOURCE_DATE_EPOCH from the environment gave %s, from --build-arg %s", fromEnv, fromArg)
	}
	if fromEnv == none {
		t.Errorf("SOURCE_DATE_EPOCH from the environment changed nothing (%s)", none)
	}
	if flag := id([]string{"SOURCE_DATE_EPOCH=1600000000"}, "--build-arg", "SOURCE_DATE_EPOCH=1700000000"); flag != fromArg {
		t.Errorf("--build-arg did not win over the environment: %s", flag)
	}
}

// TestExecFormatError runs a program no host can run (an ELF for ia64,
// which no binfmt_misc emulator covers): the step's error says what the
// program is and how to install emulators.
func TestExecFormatError(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	hdr := make([]byte, 64)
	copy(hdr, "\x7fELF\x02\x01\x01")
	hdr[16], hdr[18] = 2, 50 // ET_EXEC, EM_IA_64
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM busybox\nCOPY --chmod=755 prog /prog\nRUN [\"/prog\"]\n",
		"prog":       string(hdr),
	})
	r := e.build(dir)
	if r.err == nil {
		t.Fatal("the ia64 program ran")
	}
	for _, want := range []string{"error: Dockerfile:3", "exec format error", "/prog is an ELF machine 50 program and no binfmt_misc emulator for it is enabled", "apt-get install qemu-user-static"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stderr)
		}
	}
}
