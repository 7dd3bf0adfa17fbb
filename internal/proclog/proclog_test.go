package proclog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
)

func TestLogIsItsOwnRecord(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	stderr := NewStderr()
	cmd := exec.Command("sh", "-c", `echo 'time="2024-01-01T00:00:00Z" level=error msg="container \"x\" does not exist"' >&2; echo second line >&2; exit 3`)
	cmd.Stderr = stderr
	err := cmd.Run()
	if err == nil {
		t.Fatal("the command succeeded")
	}
	log.Info("another record")
	stderr.Log(context.Background(), log, "runc", []string{"delete", "--force", "x"}, err, nil)
	log.Info("a third record")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 records, one line each, got %d:\n%s", len(lines), out.String())
	}
	var rec map[string]string
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"level": "WARN", "msg": "child process stderr", "process": "runc", "command": "delete --force x",
		"error":  "exit status 3",
		"stderr": "time=\"2024-01-01T00:00:00Z\" level=error msg=\"container \\\"x\\\" does not exist\"\nsecond line",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %q, want %q", k, rec[k], v)
		}
	}
	for _, other := range []string{lines[0], lines[2]} {
		if strings.Contains(other, "does not exist") {
			t.Errorf("stderr spliced into another record: %s", other)
		}
	}
}

func TestBrief(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"fatal: repository not found\n", "fatal: repository not found"},
		{"warning: x\nfatal: y\n\n", "fatal: y"},
		{`time="t" level=error msg="container \"abc\" does not exist"` + "\n", `container "abc" does not exist`},
		{strings.Repeat("x", 1000), strings.Repeat("x", 512) + "…"},
	}
	for _, tt := range tests {
		s := NewStderr()
		_, _ = s.Write([]byte(tt.in))
		if got := s.Brief(); got != tt.want {
			t.Errorf("Brief(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStderrBounded(t *testing.T) {
	t.Parallel()
	s := NewStderr()
	chunk := bytes.Repeat([]byte("y"), 1000)
	for range 100 {
		if n, err := s.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	got := s.String()
	if !strings.HasPrefix(got, "[34464 earlier bytes not kept]\n") || len(got) > DefaultMax+64 {
		t.Errorf("kept %d bytes, starts %q", len(got), got[:40])
	}
}

func TestLogQuietCases(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	NewStderr().Log(context.Background(), log, "git", nil, errors.New("x"), nil)
	if out.Len() != 0 {
		t.Errorf("empty stderr logged: %s", out.String())
	}
	s := NewStderr()
	_, _ = s.Write([]byte("Cloning into 'x'...\nhttps://user:tok@host/r.git\n"))
	s.Log(context.Background(), log, "git", []string{"clone", "https://user:tok@host/r.git"}, nil, func(t string) string {
		return strings.ReplaceAll(t, "user:tok@", "")
	})
	if !strings.Contains(out.String(), "level=DEBUG") || strings.Contains(out.String(), "tok") {
		t.Errorf("record: %s", out.String())
	}
}
