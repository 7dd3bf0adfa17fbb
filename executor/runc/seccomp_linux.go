package runc

import (
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// x32SyscallBit marks a system call of the x32 ABI on x86_64.
const x32SyscallBit = 0x40000000

var (
	x32Once      sync.Once
	x32Supported bool
)

// kernelHasX32 reports whether the kernel runs x32 binaries: a getpid with
// the x32 bit set fails with ENOSYS when CONFIG_X86_X32_ABI is off (as on
// Debian's kernels by default).
func kernelHasX32() bool {
	x32Once.Do(func() {
		_, _, errno := unix.RawSyscall(x32SyscallBit|unix.SYS_GETPID, 0, 0, 0)
		x32Supported = errno == 0
	})
	return x32Supported
}

// runnableArchitectures drops the x32 ABI from a seccomp profile when the
// kernel cannot run x32 binaries at all: filtering an ABI the kernel
// rejects anyway protects nothing, and every extra architecture makes the
// runtime build a larger filter for every step (about 7 ms with runc 1.1).
func runnableArchitectures(archs []specs.Arch) []specs.Arch {
	if kernelHasX32() {
		return archs
	}
	out := archs[:0:0]
	for _, a := range archs {
		if a != specs.ArchX32 {
			out = append(out, a)
		}
	}
	return out
}
