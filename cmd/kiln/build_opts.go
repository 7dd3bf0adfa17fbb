package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	dockerconfig "github.com/docker/cli/cli/config"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/client"
	"github.com/kiln-build/kiln/progress"
)

// output is one -o value and where the client writes it.
type output struct {
	api  *api.Output
	dest string // file or directory on this machine; "-" is stdout
}

// parseCSV splits "type=local,dest=out" into key/value pairs.
func parseCSV(s, flag string) (map[string]string, error) {
	r := csv.NewReader(strings.NewReader(s))
	fields, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", flag, s, err)
	}
	m := map[string]string{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("%s %q: %q is not key=value", flag, s, f)
		}
		m[strings.ToLower(strings.TrimSpace(k))] = v
	}
	return m, nil
}

// parseOutputs parses -o values (buildx syntax) and checks client-side
// destinations before the build starts.
func parseOutputs(list []string) ([]output, error) {
	var outs []output
	for _, s := range list {
		var attrs map[string]string
		switch {
		case s == "-":
			attrs = map[string]string{"type": "tar", "dest": "-"}
		case !strings.Contains(s, "="):
			attrs = map[string]string{"type": "local", "dest": s}
		default:
			var err error
			if attrs, err = parseCSV(s, "--output"); err != nil {
				return nil, err
			}
		}
		typ := attrs["type"]
		if typ == "" {
			return nil, fmt.Errorf("--output %q: type is required (image, registry, oci, docker, local, tar)", s)
		}
		delete(attrs, "type")
		o := output{api: &api.Output{Type: typ, Attrs: attrs}}
		dest := attrs["dest"]
		switch typ {
		case "local", "tar", "oci", "docker":
			if dest == "" && typ == "docker" {
				return nil, fmt.Errorf("--output %q: type=docker needs dest=FILE (there is no Docker engine to load into; use type=image to keep it in kilnd)", s)
			}
			if dest == "" {
				return nil, fmt.Errorf("--output %q: dest is required for type=%s", s, typ)
			}
			if err := checkDest(typ, dest); err != nil {
				return nil, fmt.Errorf("--output %q: %w", s, err)
			}
			o.api.ClientSide = true
			o.dest = dest
		}
		outs = append(outs, o)
	}
	return outs, nil
}

// checkDest fails early when a destination cannot be written.
func checkDest(typ, dest string) error {
	if dest == "-" {
		if typ == "local" {
			return errors.New("dest=- is for tarballs; type=local needs a directory")
		}
		return nil
	}
	dir := filepath.Dir(dest)
	if typ == "local" {
		dir = dest
		if _, err := os.Stat(dest); errors.Is(err, os.ErrNotExist) {
			dir = filepath.Dir(dest)
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("destination directory %s does not exist", dir)
	}
	if !st.IsDir() {
		return fmt.Errorf("destination %s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".kiln-write-test-")
	if err != nil {
		return fmt.Errorf("destination directory %s is not writable: %w", dir, errors.Unwrap(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// open returns the writer for the output's stream.
func (o output) open(stdout io.Writer) (io.WriteCloser, error) {
	if o.dest == "-" {
		return nopCloser{stdout}, nil
	}
	if o.api.Type == "local" {
		return newExtractor(o.dest)
	}
	return newFileWriter(o.dest)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// fileWriter writes to a temporary file renamed into place on Close, so a
// failed build never leaves half a tarball under the destination name.
type fileWriter struct {
	f    *os.File
	dest string
}

func newFileWriter(dest string) (*fileWriter, error) {
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-")
	if err != nil {
		return nil, err
	}
	return &fileWriter{f: f, dest: dest}, nil
}

func (w *fileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *fileWriter) Close() error {
	// CreateTemp makes the file 0600; an output is an ordinary file.
	err := w.f.Chmod(0o644 &^ umask())
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(w.f.Name())
		return err
	}
	return os.Rename(w.f.Name(), w.dest)
}

// umask returns the process's file mode creation mask.
func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

func (w *fileWriter) CloseWithError(error) error {
	w.f.Close()
	return os.Remove(w.f.Name())
}

func parseCacheOptions(list []string, flag string) ([]*api.CacheOptions, error) {
	var out []*api.CacheOptions
	for _, s := range list {
		var attrs map[string]string
		if !strings.Contains(s, "=") {
			attrs = map[string]string{"type": "registry", "ref": s}
		} else {
			var err error
			if attrs, err = parseCSV(s, flag); err != nil {
				return nil, err
			}
		}
		typ := attrs["type"]
		if typ == "" {
			return nil, fmt.Errorf("%s %q: type is required (registry, local, inline)", flag, s)
		}
		delete(attrs, "type")
		out = append(out, &api.CacheOptions{Type: typ, Attrs: attrs})
	}
	return out, nil
}

// secretSet maps secret ids to where their values come from.
type secretSet map[string]func() ([]byte, bool, error)

func (s secretSet) lookup(id string) ([]byte, bool, error) {
	f, ok := s[id]
	if !ok {
		return nil, false, nil
	}
	return f()
}

func parseSecrets(list []string) (secretSet, error) {
	set := secretSet{}
	for _, s := range list {
		attrs, err := parseCSV(s, "--secret")
		if err != nil {
			return nil, err
		}
		id := attrs["id"]
		if id == "" {
			return nil, fmt.Errorf("--secret %q: id is required", s)
		}
		src := attrs["src"]
		if src == "" {
			src = attrs["source"]
		}
		env := attrs["env"]
		switch typ := attrs["type"]; {
		case typ == "env" && env == "":
			env = src
			if env == "" {
				env = id
			}
			src = ""
		case typ != "" && typ != "file" && typ != "env":
			return nil, fmt.Errorf("--secret %q: type must be file or env", s)
		}
		switch {
		case src != "":
			path := src
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("--secret %q: %w", s, unwrapPathError(err))
			}
			set[id] = func() ([]byte, bool, error) { return client.ReadSecretFile(path) }
		case env != "":
			name := env
			set[id] = func() ([]byte, bool, error) {
				v, ok := os.LookupEnv(name)
				return []byte(v), ok, nil
			}
		default:
			// Like buildx: the environment variable of that name, else a
			// file of that name.
			name := id
			set[id] = func() ([]byte, bool, error) {
				if v, ok := os.LookupEnv(name); ok {
					return []byte(v), true, nil
				}
				return client.ReadSecretFile(name)
			}
		}
	}
	return set, nil
}

func parseSSH(list []string) (map[string]string, error) {
	agents := map[string]string{}
	for _, s := range list {
		id, path, _ := strings.Cut(s, "=")
		if id == "" {
			return nil, fmt.Errorf("--ssh %q: want default or id=/path/to/agent.sock", s)
		}
		if path == "" {
			path = os.Getenv("SSH_AUTH_SOCK")
			if path == "" {
				return nil, fmt.Errorf("--ssh %s: SSH_AUTH_SOCK is not set; start an ssh agent or give id=/path/to/agent.sock", id)
			}
		}
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("--ssh %s: %w", id, unwrapPathError(err))
		}
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("--ssh %s=%s: not an ssh agent socket (key files are not supported; load the key into ssh-agent)", id, path)
		}
		agents[id] = path
	}
	return agents, nil
}

// dockerCredentials returns the login for host from ~/.docker/config.json
// (credential helpers included).
func dockerCredentials(host string) (user, secret, token string) {
	cf, err := dockerconfig.Load(dockerconfig.Dir())
	if err != nil {
		return "", "", ""
	}
	key := host
	if host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io" {
		key = "https://index.docker.io/v1/"
	}
	ac, err := cf.GetAuthConfig(key)
	if err != nil {
		return "", "", ""
	}
	return ac.Username, ac.Password, ac.IdentityToken
}

// statusEvents converts a progress batch from the wire.
func statusEvents(b *api.StatusBatch) []progress.Event {
	var out []progress.Event
	for _, v := range b.GetVertexes() {
		st := &progress.VertexStatus{
			Digest: digest.Digest(v.GetDigest()), Name: v.GetName(), Cached: v.GetCached(),
			CacheSource: v.GetCacheSource(), Error: v.GetError(), MissReason: v.GetMissReason(),
			Current: v.GetCurrent(), Total: v.GetTotal(), Location: v.GetLocation(),
		}
		if v.GetStarted() != nil {
			t := v.GetStarted().AsTime()
			st.Started = &t
		}
		if v.GetCompleted() != nil {
			t := v.GetCompleted().AsTime()
			st.Completed = &t
		}
		for _, in := range v.GetInputs() {
			st.Inputs = append(st.Inputs, digest.Digest(in))
		}
		out = append(out, progress.Event{Vertex: st})
	}
	for _, l := range b.GetLogs() {
		out = append(out, progress.Event{Log: &progress.Log{Vertex: digest.Digest(l.GetDigest()), Stream: int(l.GetStream()), Data: l.GetData(), Time: l.GetTime().AsTime()}})
	}
	for _, w := range b.GetWarnings() {
		out = append(out, progress.Event{Warning: &progress.Warning{Vertex: digest.Digest(w.GetDigest()), Message: w.GetMessage(), Location: w.GetLocation()}})
	}
	return out
}
