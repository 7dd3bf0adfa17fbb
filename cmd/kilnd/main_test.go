package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
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
	uids, err := idMap(cfg, "uid-map", cfg.Rootless.UIDMap)
	if err != nil || len(uids) != 1 || uids[0].HostID != 200000 || uids[0].Size != 1000 {
		t.Errorf("uid-map = %+v, %v", uids, err)
	}
	gids, err := idMap(cfg, "gid-map", cfg.Rootless.GIDMap)
	if err != nil || len(gids) != 1 || gids[0].HostID != 100000 || gids[0].Size != 65536 {
		t.Errorf("default gid-map = %+v, %v", gids, err)
	}
}
