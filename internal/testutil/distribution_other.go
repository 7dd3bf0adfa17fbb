//go:build !linux

package testutil

import "syscall"

func childProcAttr() *syscall.SysProcAttr { return nil }
