package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/exporter"
)

func TestCheckSupported(t *testing.T) {
	t.Parallel()
	if err := checkSupported(0); err != nil {
		t.Errorf("checkSupported(root) = %v", err)
	}
	err := checkSupported(1000)
	if err == nil || !strings.HasPrefix(err.Error(), "kilnd must run as root (sudo kilnd)") || !errors.Is(err, errdefs.ErrUnimplemented) {
		t.Errorf("checkSupported(1000) = %v", err)
	}
}

func TestIDMap(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kilnd.toml")
	if err := os.WriteFile(path, []byte("[rootless]\nenabled = true\nuid-map = \"0:200000:1000\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.LoadFileFor(path, config.Env{UID: 0, NumCPU: 2})
	if err != nil {
		t.Fatal(err)
	}
	uids, err := idMap("uid-map", cfg.Rootless.UIDMap)
	if err != nil || len(uids) != 1 || uids[0].HostID != 200000 || uids[0].Size != 1000 {
		t.Errorf("uid-map = %+v, %v", uids, err)
	}
	gids, err := idMap("gid-map", cfg.Rootless.GIDMap)
	if err != nil || len(gids) != 1 || gids[0].HostID != 100000 || gids[0].Size != 65536 {
		t.Errorf("default gid-map = %+v, %v", gids, err)
	}
}

func TestGCPolicies(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kilnd.toml")
	doc := `[worker.oci]
gc = true
[[worker.oci.gcpolicy]]
filters = ["type==source.local", "type==exec.cachemount"]
keepDuration = "48h"
[[worker.oci.gcpolicy]]
all = true
keepBytes = "8GB"
maxUsedSpace = "10%"
reservedSpace = "1GB"
minFreeSpace = "20%"
`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.LoadFileFor(path, config.Env{UID: 0, NumCPU: 2})
	if err != nil {
		t.Fatal(err)
	}
	free := func() (int64, error) { return 0, nil }
	ps := gcPolicies(cfg, 50_000_000_000, free) // a 50 GB disk
	if len(ps) != 2 {
		t.Fatalf("%d policies, want 2", len(ps))
	}
	if p := ps[0]; len(p.Types) != 2 || p.Types[0] != "source.local" || p.KeepDuration != 48*time.Hour || p.KeepBytes != 0 || p.KeepContexts {
		t.Errorf("policy 1 = %+v; want contexts and cache mounts unused for 48h, contexts included", p)
	}
	if p := ps[1]; !p.All || p.KeepBytes != 5_000_000_000 || p.ReservedBytes != 1_000_000_000 || p.MinFreeBytes != 10_000_000_000 || p.FreeBytes == nil || !p.KeepContexts {
		t.Errorf("policy 2 = %+v; want all, keep 5 GB (10%% < 8 GB), reserve 1 GB, 10 GB free, contexts kept", p)
	}
	cfg.Worker.OCI.GC = false
	if ps := gcPolicies(cfg, 50_000_000_000, free); ps != nil {
		t.Errorf("gc = false gave %d policies", len(ps))
	}
}

func TestExporters(t *testing.T) {
	t.Parallel()
	var names []string
	for n := range builtinExporters() {
		names = append(names, n)
	}
	exporter.SortTypes(names)
	if got, want := strings.Join(names, ","), strings.Join(config.BuiltinOutputTypes(), ","); got != want {
		t.Errorf("built-in exporters %s; config.BuiltinOutputTypes says %s", got, want)
	}

	dir := t.TempDir()
	prog := filepath.Join(dir, "plugin")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(dir, "data")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		plugins []config.ExporterPlugin
		want    string // error; "" for success
	}{
		{name: "plugin", plugins: []config.ExporterPlugin{{Name: "archive", Command: []string{prog}}}},
		{name: "missing program", plugins: []config.ExporterPlugin{{Name: "archive", Command: []string{filepath.Join(dir, "nope")}}},
			want: "[[exporter.plugin]] archive: command: " + filepath.Join(dir, "nope") + " does not exist"},
		{name: "not executable", plugins: []config.ExporterPlugin{{Name: "archive", Command: []string{notExec}}},
			want: "[[exporter.plugin]] archive: command: " + notExec + " is not executable"},
		{name: "directory", plugins: []config.ExporterPlugin{{Name: "archive", Command: []string{dir}}},
			want: "[[exporter.plugin]] archive: command: " + dir + " is not a file"},
		{name: "built-in name", plugins: []config.ExporterPlugin{{Name: "oci", Command: []string{prog}}},
			want: `[[exporter.plugin]] oci: the output type "oci" exists already`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := exporters(config.Exporter{Plugin: tt.plugins})
			if tt.want != "" {
				if err == nil || err.Error() != tt.want {
					t.Fatalf("error %v, want %s", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := got["archive"]; !ok || len(got) != len(builtinExporters())+1 {
				t.Errorf("exporters %v: want the built-in ones and archive", mapKeys(got))
			}
		})
	}
}

func mapKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
