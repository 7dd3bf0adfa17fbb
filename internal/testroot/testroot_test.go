package testroot

import (
	"os"
	"testing"
)

func TestRequire(t *testing.T) {
	ran := false
	t.Run("gated", func(t *testing.T) {
		Require(t, "checks the gate")
		ran = true
	})
	if ran != (os.Geteuid() == 0) {
		t.Errorf("a test needing root ran = %v as uid %d", ran, os.Geteuid())
	}
	ran = false
	t.Run("slow", func(t *testing.T) {
		RequireSlow(t, "checks the gate")
		ran = true
	})
	if ran != (os.Geteuid() == 0 && !testing.Short()) {
		t.Errorf("a slow test needing root ran = %v (uid %d, short %v)", ran, os.Geteuid(), testing.Short())
	}
}
