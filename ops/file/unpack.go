package file

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/core/errdefs"
)

// Compression formats ADD recognizes by their first bytes, as Docker does
// (never by the file name).
var (
	magicGzip  = []byte{0x1f, 0x8b, 0x08}
	magicBzip2 = []byte("BZh")
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// unpack extracts the source file srcPath when it is a tar archive. It
// returns false, and writes nothing, when the file is not an archive: ADD
// then copies it as a file.
func (x *execution) unpack(ctx context.Context, ca *copyAction, c *copier, srcPath, dstRel string, dirDest bool, m match, pa newDirAttrs) (bool, error) {
	r, ok, err := openArchive(ctx, srcPath)
	if err != nil || !ok {
		return false, err
	}
	defer r.Close()
	// An archive always unpacks into a directory: the destination itself,
	// whether or not it ends in "/" (Docker).
	target := dstRel
	if ca.Parents {
		if dir, _ := splitRel(m.keep); dir != "" {
			target = join(dstRel, dir)
		}
	}
	dir, err := c.dst.mkdirAll(target, pa)
	if err != nil {
		return true, err
	}
	var owner *[2]int
	if ca.Chown != nil {
		owner = &[2]int{c.owner.uid, c.owner.gid}
	}
	if err := extract(ctx, r, c.dst.host(dir), owner, c.mtime); err != nil {
		return true, fmt.Errorf("unpack %s: %w", displayPath(m), err)
	}
	return true, r.Close()
}

// openArchive opens the file at p and, if it is a tar archive (plain or
// compressed with gzip, bzip2, xz or zstd), returns a reader of the
// uncompressed tar stream.
func openArchive(ctx context.Context, p string) (io.ReadCloser, bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, false, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	head, _ := br.Peek(8)
	var (
		dr   io.Reader = br
		stop           = func() error { return nil }
	)
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, false, nil
		}
		dr, stop = zr, zr.Close
	case bytes.HasPrefix(head, magicBzip2):
		dr = bzip2.NewReader(br)
	case bytes.HasPrefix(head, magicXz):
		// No xz decoder is among Kiln's Go dependencies; Docker also runs
		// the xz program for these.
		xr, wait, err := xzReader(ctx, br)
		if err != nil {
			f.Close()
			return nil, false, err
		}
		dr, stop = xr, wait
	case bytes.HasPrefix(head, magicZstd):
		zr, err := zstd.NewReader(br)
		if err != nil {
			f.Close()
			return nil, false, nil
		}
		dr, stop = zr, func() error { zr.Close(); return nil }
	}
	tr := bufio.NewReaderSize(dr, 64<<10)
	block, err := tr.Peek(512)
	if err != nil || !isTarHeader(block) {
		// Not a tar (or a compressed file that is not one): ADD copies it.
		_ = stop()
		f.Close()
		return nil, false, nil
	}
	return &archiveReader{Reader: tr, closers: []func() error{stop, f.Close}}, true, nil
}

type archiveReader struct {
	io.Reader
	closers []func() error
	closed  bool
}

func (a *archiveReader) Close() error {
	if a.closed {
		return nil
	}
	a.closed = true
	var err error
	for _, c := range a.closers {
		err = joinErr(err, c())
	}
	return err
}

// isTarHeader reports whether block is a valid tar header: its checksum
// field matches the sum of its bytes (counting the field as spaces), the
// test tar(1) and file(1) use. archive/tar has no function for this.
func isTarHeader(block []byte) bool {
	if len(block) < 512 {
		return false
	}
	field := strings.TrimRight(strings.TrimSpace(strings.Trim(string(block[148:156]), "\x00 ")), "\x00")
	if field == "" {
		return false
	}
	want, err := strconv.ParseInt(field, 8, 64)
	if err != nil {
		return false
	}
	var unsigned, signed int64
	for i, b := range block[:512] {
		if i >= 148 && i < 156 {
			b = ' '
		}
		unsigned += int64(b)
		signed += int64(int8(b))
	}
	return want == unsigned || want == signed
}

// xzReader decompresses r with the xz program.
func xzReader(ctx context.Context, r io.Reader) (io.Reader, func() error, error) {
	cmd := exec.CommandContext(ctx, "xz", "-d", "-c", "-q")
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("xz archives need the xz program (Debian package xz-utils): %w", err))
		}
		return nil, nil, err
	}
	wait := func() error {
		_, _ = io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("xz: %w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	return out, wait, nil
}

// extract unpacks the tar stream r into the directory dir with containerd's
// archive.Apply, which resolves every entry inside dir. Entries whose name
// or hard-link target climbs out with ".." are rejected; owner (when set)
// and mtime (when set) replace the archive's. Whiteout names are ordinary
// files here: this is a user's archive, not an image layer.
func extract(ctx context.Context, r io.Reader, dir string, owner *[2]int, mtime *unix.Timespec) error {
	filter := func(hdr *tar.Header) (bool, error) {
		if climbs(hdr.Name) {
			return false, errdefs.Invalidf("archive entry %q leaves the destination", hdr.Name)
		}
		if hdr.Typeflag == tar.TypeLink && climbs(hdr.Linkname) {
			return false, errdefs.Invalidf("archive entry %q: hard link to %q leaves the destination", hdr.Name, hdr.Linkname)
		}
		if owner != nil {
			hdr.Uid, hdr.Gid = owner[0], owner[1]
			hdr.Uname, hdr.Gname = "", ""
		}
		if mtime != nil {
			t := time.Unix(mtime.Sec, mtime.Nsec)
			hdr.ModTime, hdr.AccessTime = t, t
		}
		return true, nil
	}
	keep := func(*tar.Header, string) (bool, error) { return true, nil }
	_, err := archive.Apply(ctx, dir, r, archive.WithFilter(filter), archive.WithConvertWhiteout(keep))
	if err != nil {
		return err
	}
	// The end-of-archive blocks and anything after them.
	_, err = io.Copy(io.Discard, r)
	return err
}

func climbs(name string) bool {
	c := path.Clean(filepath.ToSlash(name))
	return c == ".." || strings.HasPrefix(c, "../")
}
