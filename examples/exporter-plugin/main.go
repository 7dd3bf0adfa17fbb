// Command exporter-plugin is a tiny Kiln exporter plugin: it receives a
// build's result as an OCI image layout tar stream on its standard input
// and stores it at the path its dest attribute names, as a directory
// (an OCI layout, as `kiln build -o type=oci,tar=false` would write) or,
// for a dest ending in .tar, as the tarball itself. It checks each blob's
// digest on the way and prints where it put the image:
//
//	{"location":"/srv/images/app"}
//
// Configure it in kilnd.toml:
//
//	[[exporter.plugin]]
//	name = "archive"
//	command = ["/usr/local/bin/exporter-plugin"]
//
// and build with `kiln build -o type=archive,dest=/srv/images/app .`.
// The protocol is in docs/extending.md.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

func main() {
	if err := run(os.Getenv, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "exporter-plugin: %v\n", err)
		os.Exit(1)
	}
}

// run stores the layout read from in where the attributes say and writes
// the JSON response to out.
func run(getenv func(string) string, in io.Reader, out io.Writer) error {
	if v := getenv("KILN_EXPORTER_VERSION"); v != "1" {
		return fmt.Errorf("protocol version %q: this plugin speaks version 1 (is it run by kilnd?)", v)
	}
	var attrs map[string]string
	if err := json.Unmarshal([]byte(getenv("KILN_EXPORTER_ATTRS")), &attrs); err != nil {
		return fmt.Errorf("KILN_EXPORTER_ATTRS: %w", err)
	}
	dest := ""
	for k, v := range attrs {
		switch {
		case k == "dest":
			dest = v
		case layoutAttr(k): // kilnd applied it to the layout
		default:
			return fmt.Errorf("unknown attribute %q (valid: dest, and those of type=oci: name, compression, oci-mediatypes, annotation.*, ...)", k)
		}
	}
	if dest == "" || !filepath.IsAbs(dest) {
		return fmt.Errorf("dest must be an absolute path on the daemon's machine, got %q (-o type=%s,dest=/srv/images/app)", dest, getenv("KILN_EXPORTER_NAME"))
	}
	if _, err := os.Lstat(dest); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dest %s exists already: this plugin does not replace images", dest)
	}
	var err error
	if strings.HasSuffix(dest, ".tar") {
		err = saveTar(in, dest)
	} else {
		err = saveDir(in, dest)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(map[string]string{"location": dest})
}

// layoutAttr reports whether kilnd applies attribute k itself to the
// layout it sends (name, compression, oci-mediatypes, annotations...).
func layoutAttr(k string) bool {
	switch k {
	case "name", "compression", "compression-level", "force-compression", "oci-mediatypes", "rewrite-timestamp":
		return true
	}
	return strings.HasPrefix(k, "annotation")
}

// saveTar checks the stream while it copies it to dest.
func saveTar(in io.Reader, dest string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".exporter-plugin-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := extract(io.TeeReader(in, tmp), ""); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

// saveDir unpacks the stream into a new directory dest.
func saveDir(in io.Reader, dest string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dest), ".exporter-plugin-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := extract(in, tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dest)
}

// extract reads an OCI layout tar stream, checking that it holds only
// files and directories inside the layout, that every blob matches its
// name, and that oci-layout and index.json are there. With dir set it
// writes the files under dir.
func extract(in io.Reader, dir string) error {
	tr := tar.NewReader(in)
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read layout: %w", err)
		}
		name := path.Clean(hdr.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("layout entry %q is outside the layout", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if dir != "" {
				if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
					return err
				}
			}
			continue
		case tar.TypeReg:
		default:
			return fmt.Errorf("layout entry %q: not a file or directory", hdr.Name)
		}
		if err := copyEntry(tr, name, dir); err != nil {
			return err
		}
		seen[name] = true
	}
	for _, f := range []string{"oci-layout", "index.json"} {
		if !seen[f] {
			return fmt.Errorf("layout has no %s", f)
		}
	}
	return nil
}

// copyEntry copies one file of the layout (to dir, if set), checking a
// blob's digest.
func copyEntry(r io.Reader, name, dir string) error {
	w := io.Discard
	if dir != "" {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), r); err != nil {
		return fmt.Errorf("copy %s: %w", name, err)
	}
	if want, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fmt.Errorf("blob %s has digest sha256:%s", name, got)
		}
	}
	if f, ok := w.(*os.File); ok {
		return f.Close()
	}
	return nil
}
