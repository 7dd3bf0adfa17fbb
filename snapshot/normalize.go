package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/continuity/sysx"
	"golang.org/x/sys/unix"
)

const paxXattr = "SCHILY.xattr."

// normalize copies the layer tar from r to w entry by entry, fixing what
// containerd's ChangeWriter leaves: it records only the
// security.capability xattr (user.* xattrs are added here from source),
// and can only clamp times (WithFixedModTime sets them). It also rejects upper directories
// the kernel filled with redirects or metacopy files, whose data lives
// elsewhere.
func normalize(ctx context.Context, r io.Reader, w io.Writer, source string, o diffOptions, overlay bool) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		whiteout := strings.HasPrefix(filepath.Base(hdr.Name), ".wh.")
		records := map[string]string{}
		if v, ok := hdr.PAXRecords[paxXattr+"security.capability"]; ok {
			records[paxXattr+"security.capability"] = v
		}
		if !whiteout && hdr.Typeflag != tar.TypeLink {
			if err := readXattrs(filepath.Join(source, hdr.Name), overlay, records); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		}
		hdr.PAXRecords = nil
		if len(records) > 0 {
			hdr.PAXRecords = records
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		switch {
		case o.fixed != nil:
			hdr.ModTime = *o.fixed
		case o.clamp != nil && hdr.ModTime.After(*o.clamp):
			hdr.ModTime = *o.clamp
		}
		hdr.ModTime = hdr.ModTime.Truncate(time.Second)
		hdr.Format = tar.FormatPAX // PAX records only where needed
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write %s: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			if _, err := io.Copy(tw, tr); err != nil {
				return fmt.Errorf("write %s: %w", hdr.Name, err)
			}
		}
	}
	// The writer's end-of-archive blocks may still be in the pipe.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	return tw.Close()
}

// readXattrs adds the xattrs of path that belong in a layer to records.
func readXattrs(path string, overlay bool, records map[string]string) error {
	names, err := sysx.LListxattr(path)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, sysx.ENODATA) {
			return nil
		}
		return fmt.Errorf("list xattrs: %w", err)
	}
	for _, name := range names {
		if overlay {
			for _, prefix := range []string{"trusted.overlay.", "user.overlay."} {
				switch strings.TrimPrefix(name, prefix) {
				case "redirect", "metacopy":
					return fmt.Errorf("overlay %s in the upper directory: cannot diff a snapshot made with redirect_dir or metacopy on", name)
				}
			}
		}
		if strings.HasPrefix(name, "user.overlay.") || !(strings.HasPrefix(name, "user.") || name == "security.capability") {
			continue // overlay internals, SELinux labels, ACLs, trusted.*
		}
		v, err := sysx.LGetxattr(path, name)
		if err != nil {
			if errors.Is(err, sysx.ENODATA) {
				continue
			}
			return fmt.Errorf("read xattr %s: %w", name, err)
		}
		records[paxXattr+name] = string(v)
	}
	return nil
}
