package runc

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The runtime's stderr is logged as a record of its own; the error carries
// one line of it.
func TestRuntimeStderrIsItsOwnRecord(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "runc")
	script := `#!/bin/sh
if [ "$1" = --version ]; then echo "runc version 1.1.12"; exit 0; fi
echo 'time="2024-05-01T12:00:00Z" level=warning msg="first"' >&2
echo 'time="2024-05-01T12:00:00Z" level=error msg="container \"x\" does not exist"' >&2
exit 1
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r, err := newRuntime(bin, filepath.Join(dir, "state"), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.output(context.Background(), "delete", "--force", "x")
	if err == nil || err.Error() != `runc delete: exit status 1: container "x" does not exist` {
		t.Fatalf("error %v", err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one record, got:\n%s", logs.String())
	}
	var rec map[string]string
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["msg"] != "child process stderr" || rec["process"] != "runc" || rec["command"] != "--root "+filepath.Join(dir, "state")+" delete --force x" ||
		!strings.Contains(rec["stderr"], `msg="first"`+"\n") || rec["level"] != "WARN" {
		t.Errorf("record %v", rec)
	}
}
