package binfmt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Dir is where Linux shows the binfmt_misc registrations.
const Dir = "/proc/sys/fs/binfmt_misc"

// InstallHint says how to register emulators on a Debian-like host.
const InstallHint = "install emulators on the daemon's host: apt-get install qemu-user-static binfmt-support (or docker run --privileged --rm tonistiigi/binfmt --install all)"

// Entry is one binfmt_misc registration of the magic kind.
type Entry struct {
	Name        string // file name, e.g. "qemu-aarch64"
	Enabled     bool
	Interpreter string
	Offset      int
	Magic, Mask []byte
	// Platform is the OCI platform of the ELF programs the entry runs
	// ("linux/arm64"), "" when it is not for ELF programs.
	Platform string
}

// Read returns the magic-based registrations in dir (Dir on Linux), in
// name order. A missing dir (binfmt_misc not mounted) gives none.
func Read(dir string) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read binfmt_misc registrations: %w", err)
	}
	var out []Entry
	for _, de := range des {
		if de.Name() == "register" || de.Name() == "status" || de.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			continue // unregistered meanwhile, or not readable
		}
		if e, ok := parseEntry(de.Name(), string(b)); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

func parseEntry(name, text string) (Entry, bool) {
	e := Entry{Name: name}
	for _, line := range strings.Split(text, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch k {
		case "enabled":
			e.Enabled = true
		case "interpreter":
			e.Interpreter = v
		case "offset":
			e.Offset, _ = strconv.Atoi(v)
		case "magic":
			e.Magic, _ = hex.DecodeString(v)
		case "mask":
			e.Mask, _ = hex.DecodeString(v)
		}
	}
	if len(e.Magic) == 0 {
		return Entry{}, false // an extension-based entry
	}
	if e.Offset == 0 {
		hdr := e.Magic
		if len(e.Mask) == len(hdr) {
			hdr = make([]byte, len(e.Magic))
			for i := range hdr {
				hdr[i] = e.Magic[i] & e.Mask[i]
			}
		}
		e.Platform, _, _ = ELFPlatform(hdr)
	}
	return e, true
}

// Matches reports whether the entry would run a file starting with header.
func (e Entry) Matches(header []byte) bool {
	if e.Offset+len(e.Magic) > len(header) {
		return false
	}
	for i, m := range e.Magic {
		b := header[e.Offset+i]
		if len(e.Mask) == len(e.Magic) {
			b &= e.Mask[i]
			m &= e.Mask[i]
		}
		if b != m {
			return false
		}
	}
	return true
}

// EmulatedPlatforms returns the platforms of the enabled ELF entries other
// than native, sorted, each once.
func EmulatedPlatforms(entries []Entry, native string) []string {
	var out []string
	for _, e := range entries {
		if e.Enabled && e.Platform != "" && e.Platform != native && !slices.Contains(out, e.Platform) {
			out = append(out, e.Platform)
		}
	}
	slices.Sort(out)
	return out
}

// ELF machine numbers (e_machine) Kiln can name.
const (
	emI386      = 3
	emMIPS      = 8
	emPPC       = 20
	emPPC64     = 21
	emS390      = 22
	emARM       = 40
	emX86_64    = 62
	emAArch64   = 183
	emRISCV     = 243
	emLoongArch = 258
)

// ELFPlatform returns the OCI platform of the ELF program whose first
// bytes are header, and its e_machine; ok is false for a file that is not
// ELF. platform is "" for a machine Kiln has no name for.
func ELFPlatform(header []byte) (platform string, machine int, ok bool) {
	if len(header) < 20 || !bytes.HasPrefix(header, []byte("\x7fELF")) {
		return "", 0, false
	}
	is64, le := header[4] == 2, header[5] == 1
	var order binary.ByteOrder = binary.BigEndian
	if le {
		order = binary.LittleEndian
	}
	machine = int(order.Uint16(header[18:20]))
	arch := ""
	switch {
	case machine == emX86_64 && is64:
		arch = "amd64"
	case machine == emI386 && !is64:
		arch = "386"
	case machine == emAArch64 && is64:
		arch = "arm64"
	case machine == emARM && !is64 && le:
		arch = "arm/v7"
	case machine == emPPC64 && is64 && le:
		arch = "ppc64le"
	case machine == emPPC64 && is64:
		arch = "ppc64"
	case machine == emS390 && is64:
		arch = "s390x"
	case machine == emRISCV && is64:
		arch = "riscv64"
	case machine == emLoongArch && is64:
		arch = "loong64"
	case machine == emMIPS && is64 && le:
		arch = "mips64le"
	case machine == emMIPS && is64:
		arch = "mips64"
	case machine == emMIPS && le:
		arch = "mipsle"
	case machine == emMIPS:
		arch = "mips"
	case machine == emPPC && !is64:
		arch = "ppc"
	}
	if arch == "" {
		return "", machine, true
	}
	return "linux/" + arch, machine, true
}
