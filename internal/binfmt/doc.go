// Package binfmt reads the kernel's binfmt_misc registrations
// (/proc/sys/fs/binfmt_misc) to tell which foreign platforms the host can
// run through emulators such as qemu-user-static, and names the platform
// of an ELF program from its header. kilnd uses it for `kiln info` and to
// explain a step that fails with "exec format error". It imports only the
// standard library.
package binfmt
