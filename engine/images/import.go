package images

import (
	"archive/tar"
	"bufio"
	"compress/bzip2"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
)

// The kinds of file ImportImage accepts.
const (
	importOCILayout     = "oci-layout"
	importDockerArchive = "docker-archive"
	importRootfs        = "rootfs"
)

// tmpMaxAge is when an upload a crashed daemon left is removed.
const tmpMaxAge = 24 * time.Hour

// ImportRequest is one image import.
type ImportRequest struct {
	// Name names the image: optional for an image archive (its own names
	// are kept), required for a root filesystem.
	Name string
	// SourceName is the file as the user named it, for messages.
	SourceName string
	// Platform is a root filesystem image's ("os/arch[/variant]"; empty:
	// the daemon's).
	Platform string
	// Message is a root filesystem image's history comment.
	Message string
}

// ImportResult is what an import stored.
type ImportResult struct {
	// Kind is what the file was: "oci-layout", "docker-archive" or
	// "rootfs".
	Kind   string
	Images []Image
}

// Import reads a file from r into a temporary file under the daemon root
// and stores what it holds: an OCI layout or docker save archive with its
// blobs as they are, anything else tar-shaped as a one-layer image
// (docker import). Compressed files (gzip, zstd, bzip2, xz) are accepted
// for both.
func (s *Service) Import(ctx context.Context, req ImportRequest, r io.Reader) (*ImportResult, error) {
	src := req.SourceName
	if src == "" {
		src = "the upload"
	}
	if req.Name != "" {
		if _, err := imagestore.NormalizeName(req.Name); err != nil {
			return nil, err
		}
	}
	var plat ocispec.Platform
	if p := req.Platform; p != "" {
		var err error
		if plat, err = platforms.Parse(p); err != nil {
			return nil, errdefs.Invalidf("--platform %q: %v", p, err)
		}
	} else {
		plat = platforms.DefaultSpec()
	}

	dir, err := s.tempDir("import-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	raw := filepath.Join(dir, "upload")
	n, err := receiveFile(raw, r)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errdefs.Invalidf("import %s: the file is empty", src)
	}

	f, err := inspectUpload(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	res := &ImportResult{Kind: f.kind}
	if f.kind != importRootfs {
		file := raw
		if f.comp != "" {
			file = filepath.Join(dir, "archive.tar")
			if err := decompressTo(ctx, raw, file); err != nil {
				return nil, fmt.Errorf("import %s: %w", src, err)
			}
		}
		imgs, err := s.o.Puller.ImportArchive(ctx, file, req.Name)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", src, stripPathPrefix(err, file))
		}
		for _, img := range imgs {
			res.Images = append(res.Images, s.describe(ctx, img))
		}
		return res, nil
	}

	if req.Name == "" {
		return nil, errdefs.Invalidf("import %s: it is a root filesystem tarball (no index.json or manifest.json in it), so the image needs a name: kiln image import %s NAME", src, src)
	}
	if len(f.escapes) > 0 {
		return nil, errdefs.Invalidf("import %s: entry %q points outside the root filesystem", src, f.escapes[0])
	}
	layerFile := raw
	if f.comp != "gzip" {
		layerFile = filepath.Join(dir, "layer.tar.gz")
		if err := gzipTo(ctx, raw, layerFile); err != nil {
			return nil, fmt.Errorf("import %s: %w", src, err)
		}
	}
	comment := req.Message
	if comment == "" {
		comment = "Imported from " + src
	}
	img, err := rootfsImage(layerFile, plat, comment, time.Now().UTC())
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	stored, err := s.o.Puller.Import(ctx, req.Name, img)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	res.Images = []Image{s.describe(ctx, stored)}
	return res, nil
}

// tempDir makes a temporary directory under the service's TempDir,
// removing what a crashed daemon left there long ago.
func (s *Service) tempDir(prefix string) (string, error) {
	base := s.o.TempDir
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", fmt.Errorf("temporary directory: %w", err)
	}
	if ents, err := os.ReadDir(base); err == nil {
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > tmpMaxAge {
				_ = os.RemoveAll(filepath.Join(base, e.Name()))
			}
		}
	}
	dir, err := os.MkdirTemp(base, prefix)
	if err != nil {
		return "", fmt.Errorf("temporary directory: %w", err)
	}
	return dir, nil
}

// receiveFile copies r to file.
func receiveFile(file string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, 256<<10)
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			m, err := w.Write(buf[:n])
			total += int64(m)
			if err != nil {
				return total, fmt.Errorf("import: write upload: %w", err)
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return total, fmt.Errorf("import: receive upload: %w", rerr)
		}
	}
	if err := w.Flush(); err != nil {
		return total, fmt.Errorf("import: write upload: %w", err)
	}
	return total, f.Close()
}

// upload is what inspectUpload found.
type upload struct {
	kind    string
	comp    string   // "", "gzip", "zstd", "bzip2" or "xz"
	escapes []string // entries whose paths leave the root
}

// compressionOf names the compression of a file from its magic bytes.
func compressionOf(head []byte) string {
	switch {
	case len(head) >= 6 && string(head[:6]) == "\xfd7zXZ\x00":
		return "xz"
	case len(head) >= 3 && string(head[:3]) == "BZh":
		return "bzip2"
	}
	switch compression.DetectCompression(head) {
	case compression.Gzip:
		return "gzip"
	case compression.Zstd:
		return "zstd"
	}
	return ""
}

// openDecompressed returns the tar inside file.
func openDecompressed(ctx context.Context, file string) (io.ReadCloser, string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, "", err
	}
	head := make([]byte, 10)
	n, _ := io.ReadFull(f, head)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, "", err
	}
	comp := compressionOf(head[:n])
	switch comp {
	case "":
		return f, comp, nil
	case "bzip2":
		return readCloser{bzip2.NewReader(bufio.NewReader(f)), f.Close}, comp, nil
	case "xz":
		// No xz decoder is among Kiln's Go dependencies; Docker also runs
		// the xz program.
		cmd := exec.CommandContext(ctx, "xz", "-d", "-c", "-q")
		cmd.Stdin = f
		out, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			f.Close()
			return nil, comp, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("xz files need the xz program (Debian package xz-utils) on the daemon's machine: %w", err))
		}
		return readCloser{out, func() error { _ = cmd.Wait(); return f.Close() }}, comp, nil
	}
	d, err := compression.DecompressStream(f)
	if err != nil {
		f.Close()
		return nil, comp, errdefs.Invalidf("%s data: %v", comp, err)
	}
	return readCloser{d, func() error { d.Close(); return f.Close() }}, comp, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// inspectUpload reads the tar's headers and tells an image archive from a
// root filesystem.
func inspectUpload(ctx context.Context, file string) (upload, error) {
	rc, comp, err := openDecompressed(ctx, file)
	if err != nil {
		return upload{}, err
	}
	defer rc.Close()
	u := upload{comp: comp}
	top := map[string]bool{}
	var manifestJSON []byte
	tr := tar.NewReader(rc)
	for entries := 0; ; entries++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if entries == 0 && comp == "" {
				// An empty tar is 1024 zero bytes; anything shorter or
				// without a header is not a tar at all.
				if fi, err := os.Stat(file); err == nil && fi.Size() < 1024 {
					return u, errdefs.Invalidf("not a tar archive")
				}
			}
			break
		}
		if err != nil {
			what := "a tar archive"
			if comp != "" {
				what = "a " + comp + "-compressed tar archive"
			}
			return u, errdefs.Invalidf("not %s: %v", what, err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if rel := path.Clean(hdr.Name); rel == ".." || strings.HasPrefix(rel, "../") {
			u.escapes = append(u.escapes, hdr.Name)
		}
		first, _, _ := strings.Cut(name, "/")
		top[first] = true
		if name == "manifest.json" && hdr.Typeflag == tar.TypeReg && hdr.Size < 16<<20 {
			if manifestJSON, err = io.ReadAll(tr); err != nil {
				return u, errdefs.Invalidf("read manifest.json: %v", err)
			}
		}
	}
	switch {
	case top["index.json"] && (top["oci-layout"] || top["blobs"]):
		u.kind = importOCILayout
	case manifestJSON != nil && isDockerManifest(manifestJSON):
		u.kind = importDockerArchive
	default:
		u.kind = importRootfs
	}
	return u, nil
}

// isDockerManifest reports whether b is docker save's manifest.json.
func isDockerManifest(b []byte) bool {
	var m []struct {
		Config string
		Layers []string
	}
	return json.Unmarshal(b, &m) == nil && len(m) > 0 && m[0].Config != ""
}

// decompressTo writes the tar inside src to dst.
func decompressTo(ctx context.Context, src, dst string) error {
	rc, _, err := openDecompressed(ctx, src)
	if err != nil {
		return err
	}
	defer rc.Close()
	return writeFile(dst, rc, nil)
}

// gzipTo writes the tar inside src to dst, gzip-compressed.
func gzipTo(ctx context.Context, src, dst string) error {
	rc, _, err := openDecompressed(ctx, src)
	if err != nil {
		return err
	}
	defer rc.Close()
	return writeFile(dst, rc, func(w io.Writer) io.WriteCloser { return pgzip.NewWriter(w) })
}

func writeFile(dst string, r io.Reader, wrap func(io.Writer) io.WriteCloser) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	var w io.Writer = f
	var zw io.WriteCloser
	if wrap != nil {
		zw = wrap(f)
		w = zw
	}
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return err
		}
	}
	return f.Close()
}

// rootfsImage is a one-layer OCI image of the gzip-compressed tar in
// layerFile, with a minimal config (platform, creation time, history).
func rootfsImage(layerFile string, plat ocispec.Platform, comment string, created time.Time) (v1.Image, error) {
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(layerFile) }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: "kiln image import", Comment: comment},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Created = v1.Time{Time: created}
	return mutate.ConfigFile(img, cf)
}

// stripPathPrefix keeps the daemon's temporary file name out of messages.
func stripPathPrefix(err error, file string) error {
	msg := err.Error()
	if !strings.Contains(msg, file) {
		return err
	}
	return &replacedError{msg: strings.ReplaceAll(msg, "import "+file+": ", ""), err: err}
}

// replacedError is err with another message.
type replacedError struct {
	msg string
	err error
}

func (e *replacedError) Error() string { return e.msg }
func (e *replacedError) Unwrap() error { return e.err }
