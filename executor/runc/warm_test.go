package runc

import (
	"testing"

	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
)

// TestWarm: Warm compiles, before any step, the very seccomp program a
// default step needs (with and without host networking), so the first
// steps of a fresh daemon do not wait for crun to compile it.
func TestWarm(t *testing.T) {
	requireRoot(t)
	requireCrun(t)
	lower := busyboxLower(t)
	tests := []struct {
		name string
		net  sandbox.NetMode
	}{
		{"host network", sandbox.NetHost},
		{"no network", sandbox.NetNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestExecutor(t, "crun")
			e.Warm()
			<-e.warmDone // the compilation ended
			programs := func() map[[32]byte]string {
				e.seccomp.mu.Lock()
				defer e.seccomp.mu.Unlock()
				m := map[[32]byte]string{}
				for k, v := range e.seccomp.programs {
					m[k] = v
				}
				return m
			}
			warmed := programs()
			if len(warmed) != 1 {
				t.Fatalf("Warm compiled %d programs, want 1", len(warmed))
			}
			for _, p := range warmed {
				if p == "" {
					t.Fatal("Warm could not compile Docker's profile")
				}
			}
			root, _ := overlayRoot(t, lower)
			if _, stderr, err := run(t, e, root, nil, executor.Process{Args: sh("true"), Net: tt.net}); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr)
			}
			if after := programs(); len(after) != 1 {
				t.Errorf("a default step compiled another program (%d now): Warm compiled the wrong profile", len(after))
			}
		})
	}
}
