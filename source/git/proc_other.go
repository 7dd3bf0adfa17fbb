//go:build !unix

package git

import "os/exec"

// setProcessGroup does nothing where process groups do not exist; the
// context kills git alone.
func setProcessGroup(*exec.Cmd) {}
