package runc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
)

// bundle is the OCI bundle directory of one container.
type bundle struct {
	dir string
}

func newBundle(dir string) (*bundle, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	return &bundle{dir: dir}, nil
}

func (b *bundle) rootfs() string  { return filepath.Join(b.dir, "rootfs") }
func (b *bundle) logPath() string { return filepath.Join(b.dir, "log.json") }

// stagingDir is where extra mounts are mounted before they are attached.
func (b *bundle) stagingDir() string { return filepath.Join(b.dir, "mnt") }

// writeSpec writes config.json, readable by root only: SecretEnv is in it.
func (b *bundle) writeSpec(s *specs.Spec) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode runtime spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "config.json"), data, 0o600); err != nil {
		return fmt.Errorf("write runtime spec: %w", err)
	}
	return nil
}

// remove deletes the bundle. It never recurses into rootfs or the staging
// directories: they must be empty (unmounted) by now, and a non-empty one is
// an error instead of a reason to delete what may be a snapshot's content.
func (b *bundle) remove() error {
	return removeBundle(b.dir)
}

func removeBundle(dir string) error {
	var errs []error
	if entries, err := os.ReadDir(filepath.Join(dir, "mnt")); err == nil {
		for _, e := range entries {
			if err := os.Remove(filepath.Join(dir, "mnt", e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, name := range []string{"mnt", "rootfs"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove bundle %s: %w", dir, errors.Join(errs...))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove bundle: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			return fmt.Errorf("remove bundle %s: unexpected directory %s", dir, e.Name())
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove bundle %s: %w", dir, errors.Join(errs...))
	}
	return nil
}

// etcConfig says how to generate the container's /etc files.
type etcConfig struct {
	hostname   string
	extraHosts []sandbox.HostIP
	resolvConf string // host file to start from
	hostNet    bool   // the container shares the host's network
}

// etcFiles are the generated files, by their path in the container.
type etcFiles map[string]string

// writeEtcFiles writes /etc/hosts, /etc/resolv.conf and /etc/hostname for
// the container into the bundle.
func (b *bundle) writeEtcFiles(c etcConfig) (etcFiles, error) {
	resolv, err := os.ReadFile(c.resolvConf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", c.resolvConf, err)
	}
	files := etcFiles{
		"/etc/hosts":       filepath.Join(b.dir, "hosts"),
		"/etc/resolv.conf": filepath.Join(b.dir, "resolv.conf"),
		"/etc/hostname":    filepath.Join(b.dir, "hostname"),
	}
	content := map[string][]byte{
		"/etc/hosts":       hostsFile(c.hostname, c.extraHosts),
		"/etc/resolv.conf": resolvConfFile(resolv, c.hostNet),
		"/etc/hostname":    []byte(c.hostname + "\n"),
	}
	for dest, p := range files {
		if err := os.WriteFile(p, content[dest], 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", dest, err)
		}
	}
	return files, nil
}

// withEtcMounts appends read-only binds of the generated files, except where
// the caller mounts something of its own at the same path.
func withEtcMounts(mounts []executor.Mount, files etcFiles) []executor.Mount {
	out := append([]executor.Mount(nil), mounts...)
	for _, dest := range []string{"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"} {
		taken := false
		for _, m := range mounts {
			if cleanAbs(m.Dest) == dest {
				taken = true
			}
		}
		if !taken {
			out = append(out, executor.BindMount(dest, files[dest], true))
		}
	}
	return out
}

// hostsFile is the container's /etc/hosts: localhost and the hostname on the
// loopback addresses, then the extra hosts in order.
func hostsFile(hostname string, extra []sandbox.HostIP) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "127.0.0.1\tlocalhost %s\n", hostname)
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, h := range extra {
		fmt.Fprintf(&b, "%s\t%s\n", h.IP, h.Host)
	}
	return b.Bytes()
}

// resolvConfFile derives the container's /etc/resolv.conf from the host's.
// Without the host's network, nameservers on loopback addresses
// (127.0.0.0/8, ::1, e.g. systemd-resolved's 127.0.0.53) cannot be reached
// and are dropped; everything else is kept as it is.
func resolvConfFile(host []byte, hostNet bool) []byte {
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := sc.Text()
		if !hostNet && isLoopbackNameserver(line) {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func isLoopbackNameserver(line string) bool {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "nameserver" {
		return false
	}
	addr, err := netip.ParseAddr(f[1])
	return err == nil && addr.IsLoopback()
}
