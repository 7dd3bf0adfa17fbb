package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kiln build --network sets the network of RUN steps that ask for none,
// as docker buildx build --network does; host needs --allow network.host.
func TestBuildNetworkFlag(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN ls /sys/class/net > /nets\n"})
	nets := func(args ...string) string {
		t.Helper()
		out := t.TempDir()
		if r := e.build(dir, append(args, "-o", "type=local,dest="+out)...); r.err != nil {
			t.Fatalf("build %v: %v\n%s", args, r.err, r.stderr)
		}
		b, err := os.ReadFile(filepath.Join(out, "nets"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(strings.Fields(string(b)), " ")
	}
	if got := nets("--network", "none"); got != "lo" {
		t.Errorf("--network none: interfaces %q, want lo only", got)
	}
	r := e.build(dir, "--network", "host", "--no-cache")
	if r.err == nil || !strings.Contains(r.stderr, "needs the network.host entitlement") {
		t.Errorf("--network host without --allow: %v\n%s", r.err, r.stderr)
	}
	if r := e.build(dir, "--network", "bridge"); r.err == nil || !strings.Contains(r.stderr, `--network "bridge": want default, none or host`) {
		t.Errorf("--network bridge: %v\n%s", r.err, r.stderr)
	}
}

// kiln build --add-host puts the entry in RUN steps' /etc/hosts.
func TestBuildAddHost(t *testing.T) {
	e := newBldEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN grep db.internal /etc/hosts > /hosts\n"})
	out := t.TempDir()
	if r := e.build(dir, "--add-host", "db.internal:10.1.2.3", "-o", "type=local,dest="+out); r.err != nil {
		t.Fatalf("build: %v\n%s", r.err, r.stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, "hosts"))
	if err != nil || strings.Join(strings.Fields(string(b)), " ") != "10.1.2.3 db.internal" {
		t.Errorf("/etc/hosts line %q, %v", b, err)
	}
	if r := e.build(dir, "--add-host", "db.internal"); r.err == nil || !strings.Contains(r.stderr, "want host:ip or host=ip") {
		t.Errorf("--add-host without an IP: %v\n%s", r.err, r.stderr)
	}
}
