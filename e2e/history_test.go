package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHistory: kiln history ls, inspect and logs show a failed and a
// successful build from a real kilnd, with per-step cache status and the
// failed step's output, and never the secret the failed step printed.
func TestHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.importBusybox()
	e.buildHello("hello")

	dir := t.TempDir()
	df := "FROM busybox\nRUN echo first step\nRUN --mount=type=secret,id=pw cat /run/secrets/pw && echo && echo about to fail && exit 3\n"
	secret := filepath.Join(t.TempDir(), "pw")
	for name, data := range map[string]string{filepath.Join(dir, "Dockerfile"): df, secret: "s3cr3t-v4lue\n"} { // a secret file ends with a newline
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := e.run(nil, "build", "--progress", "plain", "--secret", "id=pw,src="+secret, dir)
	if r.code == 0 {
		t.Fatalf("the failing build succeeded: %s", r)
	}

	ls := e.ok("history", "ls").stdout
	lines := strings.Split(strings.TrimSpace(ls), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "BUILD ID") || !strings.Contains(lines[1], "Error") || !strings.Contains(lines[2], "Completed") {
		t.Fatalf("kiln history ls:\n%s", ls)
	}
	failedRef := strings.Fields(lines[1])[0]
	okRef := strings.Fields(lines[2])[0]

	// The newest build is the default; a prefix names a build too.
	insp := e.ok("history", "inspect").stdout
	for _, want := range []string{"Status:      Error", "Error:", "exit code: 3", "CACHED", "Print build logs: kiln history logs " + failedRef} {
		if !strings.Contains(insp, want) {
			t.Errorf("kiln history inspect lacks %q:\n%s", want, insp)
		}
	}
	// A RUN step's line goes on with its CPU, memory and I/O.
	if !regexp.MustCompile(`(?m)^  #\d+ +\[3/3\] RUN --mount=type=secret.* +ERROR +\d+\.\ds( \*)? +\d+\.\ds +[\d.]+[kMG]?B +`).MatchString(insp) {
		t.Errorf("kiln history inspect shows no failed step with its time:\n%s", insp)
	}
	okInsp := e.ok("history", "inspect", okRef[:8]).stdout
	if !strings.Contains(okInsp, "Status:      Completed") || !regexp.MustCompile(`(?m)^  #\d+ +\[3/4\] RUN echo "built by kiln".* +DONE +\d+\.\ds \* +\d+\.\ds +[\d.]+[kMG]?B +`).MatchString(okInsp) {
		t.Errorf("kiln history inspect of the successful build:\n%s", okInsp)
	}

	logs := e.ok("history", "logs", failedRef).stdout
	for _, want := range []string{"first step", "about to fail", "ERROR: ", "exit code: 3"} {
		if !strings.Contains(logs, want) {
			t.Errorf("kiln history logs lacks %q:\n%s", want, logs)
		}
	}
	step := e.ok("history", "logs", failedRef, "--step", "RUN --mount").stdout
	if !strings.Contains(step, "about to fail") || strings.Contains(step, "first step") {
		t.Errorf("kiln history logs --step:\n%s", step)
	}
	if !strings.Contains(step, "****") {
		t.Errorf("the secret the step printed is not shown redacted:\n%s", step)
	}
	for _, out := range []string{ls, insp, logs, step, e.ok("history", "ls", "--format", "json").stdout} {
		if strings.Contains(out, "s3cr3t-v4lue") {
			t.Errorf("the history shows the secret:\n%s", out)
		}
	}

	e.fails(1, "is not in kilnd's history", "history", "logs", "nosuchbuild")
	e.fails(1, "no step of the build has that name", "history", "logs", failedRef, "--step", "RUN nothing")
}
