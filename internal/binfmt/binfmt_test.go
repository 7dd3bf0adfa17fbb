package binfmt

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// elf returns the first 20 bytes of an ELF header.
func elf(is64, le bool, machine uint16) []byte {
	h := make([]byte, 20)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 1, 2, 1 // class, data, version
	if is64 {
		h[4] = 2
	}
	if le {
		h[5] = 1
		h[16] = 2 // e_type ET_EXEC
		h[18], h[19] = byte(machine), byte(machine>>8)
	} else {
		h[17] = 2
		h[18], h[19] = byte(machine>>8), byte(machine)
	}
	return h
}

func TestELFPlatform(t *testing.T) {
	t.Parallel()
	tests := []struct {
		hdr  []byte
		want string
		ok   bool
	}{
		{elf(true, true, 183), "linux/arm64", true},
		{elf(true, true, 62), "linux/amd64", true},
		{elf(false, true, 40), "linux/arm/v7", true},
		{elf(true, false, 22), "linux/s390x", true},
		{elf(true, true, 21), "linux/ppc64le", true},
		{elf(true, true, 243), "linux/riscv64", true},
		{elf(true, true, 50), "", true}, // ia64: no OCI name
		{[]byte("#!/bin/sh\necho hi\n...."), "", false},
	}
	for _, tt := range tests {
		got, _, ok := ELFPlatform(tt.hdr)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%x: got %q %v, want %q %v", tt.hdr, got, ok, tt.want, tt.ok)
		}
	}
}

// The registrations of Debian's qemu-user-static, as the kernel shows them.
func TestReadFixture(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := map[string]string{
		"status":   "enabled\n",
		"register": "",
		"qemu-aarch64": "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n" +
			"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n",
		"qemu-s390x": "disabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\nflags: PF\noffset 0\n" +
			"magic 7f454c460201020000000000000000000002001600\nmask ffffffffffffff00fffffffffffffffffffeffff\n",
		"qemu-arm": "enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: PF\noffset 0\n" +
			"magic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n",
		"jar": "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"linux/arm/v7", "linux/arm64"}, EmulatedPlatforms(entries, "linux/amd64")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var arm64 Entry
	for _, e := range entries {
		if e.Name == "qemu-aarch64" {
			arm64 = e
		}
	}
	if !arm64.Matches(elf(true, true, 183)) || arm64.Matches(elf(true, true, 62)) {
		t.Errorf("qemu-aarch64 matching is wrong")
	}
	if none, err := Read(filepath.Join(dir, "missing")); err != nil || none != nil {
		t.Errorf("a missing directory: %v, %v", none, err)
	}
}

// On this project's machines qemu-user-static is installed: the host
// emulates arm64.
func TestReadHost(t *testing.T) {
	t.Parallel()
	entries, err := Read(Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 || runtime.GOARCH != "amd64" {
		t.Skip("no binfmt_misc registrations on this host (qemu-user-static is not installed)")
	}
	if ps := EmulatedPlatforms(entries, "linux/amd64"); !slices.Contains(ps, "linux/arm64") {
		t.Errorf("emulated platforms %v lack linux/arm64", ps)
	}
}
