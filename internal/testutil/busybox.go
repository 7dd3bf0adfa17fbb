package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultPathEnv is the PATH of the busybox image, the same as Docker's
// default for Linux containers.
const DefaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// busyboxCreated is the fixed time of every file in the busybox layer and of
// the image config and history, so the image digest depends only on the
// busybox binary.
var busyboxCreated = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// The passwd and group files follow the official busybox image's accounts:
// root, the classic system accounts, and nobody/nogroup at 65534.
const busyboxPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`

const busyboxGroup = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
`

// busyboxDirs are the directories of the root filesystem with their modes.
// /proc, /sys and /dev stay empty: the runtime mounts them.
var busyboxDirs = map[string]int64{
	"bin":      0o755,
	"dev":      0o755,
	"etc":      0o755,
	"home":     0o755,
	"proc":     0o555,
	"root":     0o700,
	"sbin":     0o755,
	"sys":      0o555,
	"tmp":      0o1777,
	"usr":      0o755,
	"usr/bin":  0o755,
	"usr/sbin": 0o755,
	"var":      0o755,
}

// NewBusyboxImage builds a one-layer OCI image from a busybox-static binary:
// /bin/busybox, a symlink for every applet at the path `busybox --list-full`
// gives (/bin/sh, /bin/echo, /usr/bin/env, ...), /etc/passwd, /etc/group,
// /tmp (mode 1777), /root, /home and /var. /etc/hosts is not included (the
// runtime provides it). The config has Env PATH=DefaultPathEnv, Cmd ["sh"],
// the given platform and one history entry.
//
// Every timestamp is fixed and entries are sorted, so the digest depends only
// on the binary: it is stable across runs on one machine. The applet list
// comes from running the binary when platform.Architecture is the host's,
// and from the host's /bin/busybox otherwise (Debian builds every
// architecture from one configuration).
func NewBusyboxImage(busyboxPath string, platform v1.Platform) (v1.Image, error) {
	if platform.OS == "" {
		platform.OS = "linux"
	}
	if platform.Architecture == "" {
		return nil, fmt.Errorf("busybox image: platform has no architecture")
	}
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox image: %w", err)
	}
	lister := busyboxPath
	if platform.Architecture != hostArch() {
		if lister, err = BusyboxBinary(hostArch()); err != nil {
			return nil, fmt.Errorf("busybox image for %s: listing applets needs the host's busybox: %w", platform.Architecture, err)
		}
	}
	applets, err := listApplets(lister)
	if err != nil {
		return nil, err
	}
	layerTar, err := busyboxLayerTar(bin, applets)
	if err != nil {
		return nil, fmt.Errorf("busybox image: %w", err)
	}
	return imageFromLayerTar(layerTar, platform, busyboxVersion(bin))
}

// listApplets runs `busybox --list-full` and returns the applet paths
// (relative, sorted, without busybox itself).
func listApplets(busyboxPath string) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(busyboxPath, "--list-full")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %s --list-full: %w: %s", busyboxPath, err, strings.TrimSpace(stderr.String()))
	}
	seen := map[string]bool{}
	var applets []string
	for _, line := range strings.Split(string(out), "\n") {
		p := strings.Trim(strings.TrimSpace(line), "/")
		// linuxrc is an init alias at the root; the official image has none.
		if p == "" || p == "bin/busybox" || !strings.Contains(p, "/") || seen[p] {
			continue
		}
		if path.Clean(p) != p || strings.HasPrefix(p, "..") {
			return nil, fmt.Errorf("list busybox applets: unexpected path %q", line)
		}
		seen[p] = true
		applets = append(applets, p)
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("list busybox applets: %s --list-full printed no applets", busyboxPath)
	}
	sort.Strings(applets)
	return applets, nil
}

// busyboxLayerTar writes the layer's uncompressed tar: directories, files
// and applet symlinks, sorted by path so parents come first.
func busyboxLayerTar(bin []byte, applets []string) ([]byte, error) {
	type entry struct {
		hdr  *tar.Header
		body []byte
	}
	entries := map[string]entry{}
	addDir := func(p string, mode int64) {
		if _, ok := entries[p]; !ok {
			entries[p] = entry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode}}
		}
	}
	for p, mode := range busyboxDirs {
		addDir(p, mode)
	}
	addFile := func(p string, mode int64, body []byte) {
		entries[p] = entry{hdr: &tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(body))}, body: body}
	}
	addFile("bin/busybox", 0o755, bin)
	addFile("etc/passwd", 0o644, []byte(busyboxPasswd))
	addFile("etc/group", 0o644, []byte(busyboxGroup))
	for _, a := range applets {
		if _, ok := entries[a]; ok {
			continue
		}
		for d := path.Dir(a); d != "."; d = path.Dir(d) {
			addDir(d, 0o755)
		}
		// Relative targets keep the links valid when the rootfs is looked
		// at from outside the container too.
		rel := relPath(path.Dir(a), "bin/busybox")
		entries[a] = entry{hdr: &tar.Header{Typeflag: tar.TypeSymlink, Name: a, Linkname: rel, Mode: 0o777}}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		e.hdr.ModTime = busyboxCreated
		e.hdr.Format = tar.FormatPAX
		e.hdr.Uname, e.hdr.Gname = "root", "root"
		if err := tw.WriteHeader(e.hdr); err != nil {
			return nil, fmt.Errorf("write %s: %w", n, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("write %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// relPath is filepath.Rel for slash-separated relative paths.
func relPath(fromDir, to string) string {
	if fromDir == "." {
		return to
	}
	if path.Dir(to) == fromDir {
		return path.Base(to)
	}
	return strings.Repeat("../", strings.Count(fromDir, "/")+1) + to
}

// busyboxVersion finds the "BusyBox v1.35.0 (Debian ...)" banner inside the
// binary, so the history can name the version without running it.
func busyboxVersion(bin []byte) string {
	i := bytes.Index(bin, []byte("BusyBox v"))
	if i < 0 {
		return "busybox"
	}
	s := bin[i:min(len(bin), i+96)]
	if j := bytes.IndexByte(s, ')'); j > 0 {
		return string(s[:j+1])
	}
	if j := bytes.IndexByte(s, 0); j > 0 {
		return string(s[:j])
	}
	return "busybox"
}

// imageFromLayerTar gzips the tar (stdlib gzip at BestSpeed: deterministic
// for a given Go version, and cheap under -race) and wraps it in an OCI
// image with the config.
func imageFromLayerTar(uncompressed []byte, platform v1.Platform, version string) (v1.Image, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(uncompressed); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	layer := newMemLayer(gz.Bytes(), uncompressed)
	diffID, err := layer.DiffID()
	if err != nil {
		return nil, err
	}
	hist := v1.History{
		Created:   v1.Time{Time: busyboxCreated},
		CreatedBy: "kiln testutil: " + version + " from busybox-static: /bin/busybox, applet links, /etc/passwd, /etc/group",
		Comment:   "test fixture",
	}
	cfg := &v1.ConfigFile{
		Architecture: platform.Architecture,
		OS:           platform.OS,
		OSVersion:    platform.OSVersion,
		Variant:      platform.Variant,
		Created:      v1.Time{Time: busyboxCreated},
		History:      []v1.History{hist},
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		Config: v1.Config{
			Env: []string{DefaultPathEnv},
			Cmd: []string{"sh"},
		},
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: hist})
	if err != nil {
		return nil, err
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	return img, nil
}

// NewBusyboxIndex builds an OCI index with one busybox image per platform,
// each from the binary BusyboxBinary finds for its architecture. It fails
// with an error in the errdefs.ErrNotFound class when a binary is missing.
func NewBusyboxIndex(platforms ...v1.Platform) (v1.ImageIndex, error) {
	if len(platforms) == 0 {
		return nil, fmt.Errorf("busybox index: no platforms")
	}
	imgs := make([]v1.Image, len(platforms))
	for i, p := range platforms {
		bin, err := BusyboxBinary(p.Architecture)
		if err != nil {
			return nil, err
		}
		if imgs[i], err = NewBusyboxImage(bin, p); err != nil {
			return nil, err
		}
	}
	return indexOf(imgs, platforms), nil
}

// indexOf wraps images in an OCI index, one descriptor per platform.
func indexOf(imgs []v1.Image, platforms []v1.Platform) v1.ImageIndex {
	adds := make([]mutate.IndexAddendum, len(imgs))
	for i, img := range imgs {
		p := platforms[i]
		if p.OS == "" {
			p.OS = "linux"
		}
		adds[i] = mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p, MediaType: types.OCIManifestSchema1},
		}
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	return mutate.AppendManifests(idx, adds...)
}

// memLayer is a gzip layer held in memory. tarball.LayerFromOpener would do,
// but its layers carry an empty annotations map that makes the manifest
// differ from its own JSON round trip (validate.Image rejects that).
type memLayer struct {
	compressed, uncompressed []byte
	digest, diffID           v1.Hash
}

var _ v1.Layer = (*memLayer)(nil)

func newMemLayer(compressed, uncompressed []byte) *memLayer {
	// Hashing an in-memory reader cannot fail.
	digest, _, _ := v1.SHA256(bytes.NewReader(compressed))
	diffID, _, _ := v1.SHA256(bytes.NewReader(uncompressed))
	return &memLayer{compressed: compressed, uncompressed: uncompressed, digest: digest, diffID: diffID}
}

func (l *memLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)     { return int64(len(l.compressed)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) {
	return types.OCILayer, nil
}
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.uncompressed)), nil
}
