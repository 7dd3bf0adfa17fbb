//go:build unix

package git

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts git in a process group of its own and has a
// cancelled context kill the whole group: git's helpers (remote-https,
// ssh, upload-pack) do not die with it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
