package buildkit

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// qemuPlatforms maps binfmt_misc handler names (Debian's
// qemu-user-static registers qemu-<arch>) to the platforms they run.
var qemuPlatforms = map[string][]ocispec.Platform{
	"qemu-aarch64":     {{OS: "linux", Architecture: "arm64"}},
	"qemu-arm":         {{OS: "linux", Architecture: "arm", Variant: "v7"}, {OS: "linux", Architecture: "arm", Variant: "v6"}},
	"qemu-riscv64":     {{OS: "linux", Architecture: "riscv64"}},
	"qemu-ppc64le":     {{OS: "linux", Architecture: "ppc64le"}},
	"qemu-s390x":       {{OS: "linux", Architecture: "s390x"}},
	"qemu-x86_64":      {{OS: "linux", Architecture: "amd64"}},
	"qemu-i386":        {{OS: "linux", Architecture: "386"}},
	"qemu-mips64el":    {{OS: "linux", Architecture: "mips64le"}},
	"qemu-loongarch64": {{OS: "linux", Architecture: "loong64"}},
}

// EmulatedPlatforms lists the platforms whose binaries run here through an
// enabled QEMU handler in binfmtDir (/proc/sys/fs/binfmt_misc), and 386
// on amd64 (which runs natively), as BuildKit's worker reports them.
func EmulatedPlatforms(binfmtDir string) []ocispec.Platform {
	var out []ocispec.Platform
	if runtime.GOARCH == "amd64" {
		out = append(out, ocispec.Platform{OS: "linux", Architecture: "386"})
	}
	ents, err := os.ReadDir(binfmtDir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		ps, ok := qemuPlatforms[e.Name()]
		if !ok || !handlerEnabled(filepath.Join(binfmtDir, e.Name())) {
			continue
		}
		out = append(out, ps...)
	}
	return out
}

func handlerEnabled(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	return sc.Scan() && strings.TrimSpace(sc.Text()) == "enabled"
}
