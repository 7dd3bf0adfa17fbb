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
	dir := t.TempDir()
	load := func(doc string) *config.Config {
		t.Helper()
		p := filepath.Join(dir, "kilnd.toml")
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := config.LoadFileFor(p, config.Env{UID: 0, NumCPU: 2})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	rootless := load("[worker.oci]\nmax-parallelism = 2\n\n[rootless]\nenabled = true\n")
	for _, tc := range []struct {
		name string
		cfg  *config.Config
		euid int
		want string // "" for no error
	}{
		{"root, defaults", config.DefaultFor(config.Env{UID: 0, NumCPU: 2}), 0, ""},
		{"rootless asked for", rootless, 0, filepath.Join(dir, "kilnd.toml") + ":5: [rootless] enabled: rootless mode is not available in this kilnd yet"},
		{"started without root", config.DefaultFor(config.Env{UID: 0, NumCPU: 2}), 1000, "kilnd must run as root (sudo kilnd)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSupported(tc.cfg, tc.euid)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("checkSupported = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("checkSupported = %v, want an error starting %q", err, tc.want)
			case tc.want != "" && !errors.Is(err, errdefs.ErrUnimplemented):
				t.Errorf("checkSupported = %v, not in the unimplemented class", err)
			}
		})
	}
}
