package main

import (
	"archive/tar"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/kiln-build/kiln/api"
)

// localCacheDirs offers the directories of the build's type=local cache
// values to kilnd, which reads them through the build session under the
// names "cache-from:<i>" and "cache-to:<i>" (i: the value's position among
// --cache-from or --cache-to values), and returns the destination of each
// type=local --cache-to by position. Paths are made absolute in the
// request, for kilnd's messages.
func localCacheDirs(req *api.BuildRequest, dirs map[string]string) (map[int]string, error) {
	for i, c := range req.GetCacheFrom() {
		if c.GetType() != "local" || c.GetAttrs()["src"] == "" {
			continue
		}
		abs, err := filepath.Abs(c.GetAttrs()["src"])
		if err != nil {
			return nil, fmt.Errorf("--cache-from type=local,src=%s: %w", c.GetAttrs()["src"], err)
		}
		c.Attrs["src"] = abs
		if st, err := os.Stat(abs); err == nil && st.IsDir() {
			dirs["cache-from:"+strconv.Itoa(i)] = abs
		}
	}
	dests := map[int]string{}
	for i, c := range req.GetCacheTo() {
		if c.GetType() != "local" || c.GetAttrs()["dest"] == "" {
			continue
		}
		abs, err := filepath.Abs(c.GetAttrs()["dest"])
		if err != nil {
			return nil, fmt.Errorf("--cache-to type=local,dest=%s: %w", c.GetAttrs()["dest"], err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("--cache-to type=local: %w", err)
		}
		c.Attrs["dest"] = abs
		dirs["cache-to:"+strconv.Itoa(i)] = abs
		dests[i] = abs
	}
	return dests, nil
}

// openCacheDir returns the writer kilnd's tar stream of a type=local
// cache export is unpacked through into dir.
func openCacheDir(dir string) (io.WriteCloser, error) {
	pr, pw := io.Pipe()
	x := &cacheExtractor{pw: pw, done: make(chan error, 1)}
	go func() {
		err := extractCache(dir, pr)
		_ = pr.CloseWithError(err)
		x.done <- err
	}()
	return x, nil
}

type cacheExtractor struct {
	pw   *io.PipeWriter
	done chan error
}

func (x *cacheExtractor) Write(p []byte) (int, error) { return x.pw.Write(p) }

func (x *cacheExtractor) Close() error {
	_ = x.pw.Close()
	return <-x.done
}

func (x *cacheExtractor) CloseWithError(err error) error {
	x.pw.CloseWithError(err)
	<-x.done
	return nil
}

var blobName = regexp.MustCompile(`^blobs/sha256/[0-9a-f]{64}$`)

// extractCache unpacks an OCI layout tar into dir: blobs dir has are
// skipped, new ones are checked against their names and renamed into
// place, index.json and oci-layout are replaced atomically. Any other
// entry is refused.
func extractCache(dir string, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cache export to %s: %w", dir, err)
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("cache export to %s: unexpected entry %q", dir, h.Name)
		}
		switch {
		case blobName.MatchString(h.Name):
			p := filepath.Join(dir, filepath.FromSlash(h.Name))
			if fi, err := os.Stat(p); err == nil && fi.Size() == h.Size {
				if _, err := io.Copy(io.Discard, tr); err != nil {
					return err
				}
				continue
			}
			want := filepath.Base(h.Name)
			if err := writeAtomic(p, tr, func(sum []byte) error {
				if hex.EncodeToString(sum) != want {
					return fmt.Errorf("blob %s: content does not match its name", want)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("cache export to %s: %w", dir, err)
			}
		case h.Name == "index.json" || h.Name == "oci-layout":
			if err := writeAtomic(filepath.Join(dir, h.Name), io.LimitReader(tr, 16<<20), nil); err != nil {
				return fmt.Errorf("cache export to %s: %w", dir, err)
			}
		default:
			return fmt.Errorf("cache export to %s: unexpected entry %q", dir, h.Name)
		}
	}
}

// writeAtomic writes r to p through a temporary file in p's directory;
// check, if set, sees the SHA-256 of the content before the rename.
func writeAtomic(p string, r io.Reader, check func(sum []byte) error) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(p), ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if err == nil && check != nil {
		err = check(h.Sum(nil))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
