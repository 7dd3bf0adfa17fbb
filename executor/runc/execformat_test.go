package runc

import (
	"errors"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/executor"
)

// elfHeader is the start of an ELF program for machine (64-bit, little
// endian, ET_EXEC).
func elfHeader(machine uint16) []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	h[16], h[18], h[19] = 2, byte(machine), byte(machine>>8)
	return h
}

func TestExplainExecFormat(t *testing.T) {
	t.Parallel()
	rootfs := t.TempDir()
	write := func(p string, data []byte) {
		full := filepath.Join(rootfs, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("bin/sh", elfHeader(183)) // arm64
	write("opt/ia64", elfHeader(50))
	write("usr/bin/script", []byte("#!/bin/sh\necho hi\n"))
	write("data.txt", []byte("hello"))
	write("native", nativeHeader())
	binfmtDir := filepath.Join(rootfs, "no-binfmt") // no emulators
	withEmulator := t.TempDir()
	if err := os.WriteFile(filepath.Join(withEmulator, "qemu-aarch64"), []byte("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n"+
		"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := errors.New(`runc run failed: unable to start container process: exec: "/bin/sh": exec format error`)
	tests := []struct {
		name   string
		args   []string
		binfmt string
		err    error
		want   string
	}{
		{name: "missing emulator", args: []string{"/bin/sh", "-c", "true"}, binfmt: binfmtDir, err: base,
			want: "/bin/sh is a linux/arm64 program and no binfmt_misc emulator for it is enabled on the daemon's host (kiln info lists the emulated platforms); install emulators on the daemon's host: apt-get install qemu-user-static"},
		{name: "through PATH", args: []string{"sh"}, binfmt: binfmtDir, err: base, want: "/bin/sh is a linux/arm64 program and no binfmt_misc emulator"},
		{name: "script interpreter", args: []string{"script"}, binfmt: binfmtDir, err: base, want: "/bin/sh (the interpreter of /usr/bin/script) is a linux/arm64 program"},
		{name: "unnamed machine", args: []string{"/opt/ia64"}, binfmt: binfmtDir, err: base, want: "/opt/ia64 is an ELF machine 50 program and no binfmt_misc emulator"},
		{name: "emulator registered", args: []string{"/bin/sh"}, binfmt: withEmulator, err: base, want: "the binfmt_misc entry qemu-aarch64 should run it with /usr/libexec/qemu-binfmt/aarch64-binfmt-P"},
		{name: "not a program", args: []string{"/data.txt"}, binfmt: binfmtDir, err: base, want: "/data.txt is neither an ELF program nor a script starting with #!"},
		{name: "exit code 1, as runc reports it", args: []string{"/bin/sh"}, binfmt: binfmtDir, err: &executor.ExitError{Code: 1}, want: "/bin/sh is a linux/arm64 program"},
		{name: "native program", args: []string{"/native"}, binfmt: binfmtDir, err: base, want: ""},
		{name: "native program, exit code 1", args: []string{"/native"}, binfmt: binfmtDir, err: &executor.ExitError{Code: 1}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := explainExecFormat(tt.err, rootfs, executor.Process{Args: tt.args}, tt.binfmt)
			if !errors.Is(got, tt.err) {
				t.Errorf("the runtime's error is not wrapped: %v", got)
			}
			if tt.want == "" {
				if got != tt.err {
					t.Errorf("changed an unrelated error: %v", got)
				}
				return
			}
			if !strings.Contains(got.Error(), tt.want) {
				t.Errorf("got %q\nwant it to contain %q", got, tt.want)
			}
		})
	}
}

// nativeHeader is an ELF header for the machine the test runs on.
func nativeHeader() []byte {
	switch goruntime.GOARCH {
	case "arm64":
		return elfHeader(183)
	default:
		return elfHeader(62)
	}
}

func TestTailWriter(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	tw := &tailWriter{w: &out}
	for range 100 {
		_, _ = tw.Write([]byte("some output line\n"))
	}
	_, _ = tw.Write([]byte("exec /prog: exec format error\n"))
	if !tw.contains(execFormat) || len(tw.tail) > 512 || !strings.HasSuffix(out.String(), "exec format error\n") {
		t.Errorf("tail %q", tw.tail)
	}
}
