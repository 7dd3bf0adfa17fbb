package testutil

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/kiln-build/kiln/core/errdefs"
)

// KilnShareDir is where the install script puts fixtures that Debian does
// not install for the host architecture: busybox-<arch> binaries or the
// busybox-static_<arch>.deb they come from.
const KilnShareDir = "/usr/share/kiln"

// hostBusybox is where Debian's busybox-static installs its binary.
const hostBusybox = "/bin/busybox"

func hostArch() string { return runtime.GOARCH }

// BusyboxBinary returns the path of a busybox-static binary for arch
// ("amd64", "arm64", ...). For the host architecture that is /bin/busybox.
// For others it looks for KilnShareDir/busybox-<arch>, then for a
// busybox-static .deb of that architecture in KilnShareDir or apt's cache
// (/var/cache/apt/archives), which it extracts once into the temp dir.
// A missing binary is an error in the errdefs.ErrNotFound class that says how
// to get it.
func BusyboxBinary(arch string) (string, error) {
	var candidates []string
	if arch == hostArch() {
		candidates = append(candidates, hostBusybox)
	}
	candidates = append(candidates, filepath.Join(KilnShareDir, "busybox-"+arch))
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			return c, nil
		}
	}
	var debs []string
	for _, pattern := range []string{
		filepath.Join(KilnShareDir, "busybox-static*_"+arch+".deb"),
		"/var/cache/apt/archives/busybox-static_*_" + arch + ".deb",
	} {
		m, _ := filepath.Glob(pattern) // the patterns are well-formed
		sort.Strings(m)
		debs = append(debs, m...)
	}
	if len(debs) > 0 {
		return extractBusyboxDeb(debs[len(debs)-1], arch)
	}
	if arch == hostArch() {
		return "", errdefs.NotFoundf("no busybox-static binary at %s: apt-get install busybox-static", hostBusybox)
	}
	return "", errdefs.NotFoundf("no busybox-static binary for %s: put it at %s/busybox-%s, e.g. "+
		"dpkg --add-architecture %s && apt-get update && cd %s && apt-get download busybox-static:%s && "+
		"dpkg-deb --fsys-tarfile busybox-static_*_%s.deb | tar -xO ./bin/busybox > busybox-%s && chmod 755 busybox-%s",
		arch, KilnShareDir, arch, arch, KilnShareDir, arch, arch, arch, arch)
}

// extractBusyboxDeb copies ./bin/busybox out of a .deb (with dpkg-deb, which
// knows every compression a .deb may use) into the temp dir, once per .deb.
func extractBusyboxDeb(deb, arch string) (string, error) {
	data, err := os.ReadFile(deb)
	if err != nil {
		return "", fmt.Errorf("busybox for %s: %w", arch, err)
	}
	sum := sha256.Sum256(data)
	dst := filepath.Join(os.TempDir(), "kiln-busybox-"+arch+"-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	var stderr bytes.Buffer
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("busybox for %s: dpkg-deb --fsys-tarfile %s: %w: %s", arch, deb, err, stderr.String())
	}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", errdefs.NotFoundf("busybox for %s: %s has no ./bin/busybox", arch, deb)
		}
		if err != nil {
			return "", fmt.Errorf("busybox for %s: read %s: %w", arch, deb, err)
		}
		if filepath.Clean(hdr.Name) != "bin/busybox" || hdr.Typeflag != tar.TypeReg {
			continue
		}
		tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".tmp-*")
		if err != nil {
			return "", err
		}
		_, err = io.Copy(tmp, tr)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), 0o755)
		}
		if err == nil {
			err = os.Rename(tmp.Name(), dst) // atomic: concurrent tests may race here
		}
		if err != nil {
			_ = os.Remove(tmp.Name())
			return "", fmt.Errorf("busybox for %s: extract from %s: %w", arch, deb, err)
		}
		return dst, nil
	}
}
