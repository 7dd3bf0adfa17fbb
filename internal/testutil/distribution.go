package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/core/errdefs"
)

// DistributionBinary is where Debian's docker-registry package installs the
// CNCF distribution server.
const DistributionBinary = "/usr/bin/docker-registry"

// DistributionOptions configures NewDistribution. The zero value is a
// plain-HTTP registry with in-memory storage and no authentication.
type DistributionOptions struct {
	// Users enables htpasswd basic auth with these user → password pairs
	// (bcrypt hashes made by `htpasswd -Bbn` from apache2-utils).
	Users map[string]string
	// TLS serves HTTPS with a certificate for 127.0.0.1 and localhost issued
	// by a fresh CA (Distribution.CA, written to Distribution.CAFile).
	TLS bool
	// ClientCerts requires client certificates signed by the CA (implies
	// TLS); Distribution.ClientCertFile/ClientKeyFile hold one.
	ClientCerts bool
	// Filesystem stores blobs under Dir/storage instead of in memory.
	Filesystem bool
	// Proxy makes the registry a pull-through cache of this upstream URL
	// (e.g. "http://127.0.0.1:5000"), as a registry mirror is deployed.
	// Pushes to a proxy are refused by the server.
	Proxy         string
	ProxyUsername string
	ProxyPassword string
	// Binary overrides DistributionBinary.
	Binary string
	// Dir holds the config, certificates, htpasswd file, storage and log.
	// Empty means a new temp dir that Close removes.
	Dir string
}

// Distribution is a running docker-registry process on 127.0.0.1.
type Distribution struct {
	Host string // "127.0.0.1:port", the registry part of references
	URL  string // "http://127.0.0.1:port" or "https://..."
	Dir  string

	CA                            *CA    // nil without TLS
	CAFile                        string // the CA certificate, PEM
	ClientCertFile, ClientKeyFile string // a client certificate from CA
	Users                         map[string]string
	LogFile                       string // the server's stdout and stderr

	cmd     *exec.Cmd
	exited  chan struct{}
	ownDir  bool
	stopped sync.Once
	stopErr error
}

// NewDistribution starts docker-registry with opts on a free port of
// 127.0.0.1 and returns once it answers GET /v2/. A missing binary (or
// htpasswd, when Users is set) is an error in the errdefs.ErrNotFound class.
// Close stops it.
func NewDistribution(ctx context.Context, opts DistributionOptions) (*Distribution, error) {
	bin := opts.Binary
	if bin == "" {
		bin = DistributionBinary
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, errdefs.NotFoundf("no distribution server at %s: apt-get install docker-registry", bin)
	}
	d := &Distribution{Dir: opts.Dir, Users: opts.Users}
	if d.Dir == "" {
		dir, err := os.MkdirTemp("", "kiln-distribution-")
		if err != nil {
			return nil, err
		}
		d.Dir, d.ownDir = dir, true
	}
	if err := d.prepare(opts); err != nil {
		d.cleanupDir()
		return nil, err
	}
	// A free port can be taken between choosing and binding it; try again
	// with another one when that happens.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = d.start(ctx, bin, opts); err == nil {
			return d, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	d.cleanupDir()
	return nil, err
}

// prepare writes the certificates and htpasswd file.
func (d *Distribution) prepare(opts DistributionOptions) error {
	if opts.TLS || opts.ClientCerts {
		ca, err := NewCA("kiln test registry CA")
		if err != nil {
			return err
		}
		d.CA = ca
		d.CAFile = filepath.Join(d.Dir, "ca.pem")
		if err := ca.WriteCertFile(d.CAFile); err != nil {
			return err
		}
		if _, _, err := ca.IssueFiles(d.Dir, "server", "127.0.0.1", "localhost", "::1"); err != nil {
			return err
		}
		if d.ClientCertFile, d.ClientKeyFile, err = ca.IssueFiles(d.Dir, "client"); err != nil {
			return err
		}
	}
	if len(opts.Users) > 0 {
		if _, err := exec.LookPath("htpasswd"); err != nil {
			return errdefs.NotFoundf("no htpasswd binary for registry basic auth: apt-get install apache2-utils")
		}
		var buf bytes.Buffer
		for _, u := range sortedKeys(opts.Users) {
			var stderr bytes.Buffer
			cmd := exec.Command("htpasswd", "-Bbn", u, opts.Users[u])
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("htpasswd -Bbn %s: %w: %s", u, err, stderr.String())
			}
			buf.Write(bytes.TrimSpace(out))
			buf.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(d.Dir, "htpasswd"), buf.Bytes(), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// config renders the registry's YAML configuration for addr.
func (d *Distribution) config(addr string, opts DistributionOptions) string {
	q := strconv.Quote // a Go-quoted string is a valid YAML double-quoted scalar here
	var b strings.Builder
	b.WriteString("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n")
	if opts.Filesystem {
		fmt.Fprintf(&b, "  filesystem:\n    rootdirectory: %s\n", q(filepath.Join(d.Dir, "storage")))
	} else {
		b.WriteString("  inmemory: {}\n")
	}
	b.WriteString("  delete:\n    enabled: true\n")
	fmt.Fprintf(&b, "http:\n  addr: %s\n  secret: %s\n", q(addr), q(randomHex(16)))
	if d.CA != nil {
		fmt.Fprintf(&b, "  tls:\n    certificate: %s\n    key: %s\n",
			q(filepath.Join(d.Dir, "server.pem")), q(filepath.Join(d.Dir, "server-key.pem")))
		if opts.ClientCerts {
			fmt.Fprintf(&b, "    clientcas:\n      - %s\n", q(d.CAFile))
		}
	}
	if len(opts.Users) > 0 {
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: kiln-test\n    path: %s\n", q(filepath.Join(d.Dir, "htpasswd")))
	}
	if opts.Proxy != "" {
		fmt.Fprintf(&b, "proxy:\n  remoteurl: %s\n", q(opts.Proxy))
		if opts.ProxyUsername != "" {
			fmt.Fprintf(&b, "  username: %s\n  password: %s\n", q(opts.ProxyUsername), q(opts.ProxyPassword))
		}
	}
	return b.String()
}

// start runs the server on a fresh port and waits until it answers.
func (d *Distribution) start(ctx context.Context, bin string, opts DistributionOptions) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfgPath := filepath.Join(d.Dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(d.config(addr, opts)), 0o600); err != nil {
		return err
	}
	d.LogFile = filepath.Join(d.Dir, "registry.log")
	logf, err := os.Create(d.LogFile)
	if err != nil {
		return err
	}
	defer logf.Close()

	d.stopped = sync.Once{} // a fresh process for this attempt
	d.stopErr = nil
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Dir = d.Dir
	// A clean environment: REGISTRY_* variables would override the config.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + d.Dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	d.cmd, d.exited = cmd, exited

	scheme := "http"
	if d.CA != nil {
		scheme = "https"
	}
	d.Host, d.URL = addr, scheme+"://"+addr
	if err := d.waitReady(ctx); err != nil {
		_ = d.stop()
		return fmt.Errorf("docker-registry on %s: %w; log: %s", addr, err, d.logTail())
	}
	return nil
}

func (d *Distribution) waitReady(ctx context.Context) error {
	client := &http.Client{Transport: d.Transport(), Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			lastErr = fmt.Errorf("GET /v2/ answered %s", resp.Status)
		} else {
			lastErr = err
		}
		select {
		case <-d.exited:
			return errors.New("exited before answering /v2/")
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("no answer on /v2/ within 15s: %w", lastErr)
}

// Transport returns an HTTP transport that trusts the registry's CA and
// presents its client certificate (when TLS is on).
func (d *Distribution) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if d.CA != nil {
		cfg := &tls.Config{RootCAs: d.CA.Pool, MinVersion: tls.VersionTLS12}
		if d.ClientCertFile != "" {
			if pair, err := tls.LoadX509KeyPair(d.ClientCertFile, d.ClientKeyFile); err == nil {
				cfg.Certificates = []tls.Certificate{pair}
			}
		}
		t.TLSClientConfig = cfg
	}
	return t
}

// RemoteOptions returns go-containerregistry options that reach this
// registry: its Transport and, with Users, basic auth as the first user in
// sorted order.
func (d *Distribution) RemoteOptions() []remote.Option {
	opts := []remote.Option{remote.WithTransport(d.Transport())}
	if users := sortedKeys(d.Users); len(users) > 0 {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: users[0], Password: d.Users[users[0]]}))
	}
	return opts
}

// Ref returns the reference of repoAndTag ("app:1") on this registry.
func (d *Distribution) Ref(repoAndTag string) string { return d.Host + "/" + repoAndTag }

// Close stops the server (SIGTERM, then SIGKILL after 5s) and removes Dir if
// NewDistribution created it. It is safe to call more than once; a test
// calls it early to make the registry unreachable.
func (d *Distribution) Close() error {
	err := d.stop()
	d.cleanupDir()
	return err
}

func (d *Distribution) stop() error {
	d.stopped.Do(func() {
		if d.cmd == nil || d.cmd.Process == nil {
			return
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
			d.stopErr = fmt.Errorf("docker-registry on %s ignored SIGTERM for 5s", d.Host)
		}
	})
	return d.stopErr
}

func (d *Distribution) cleanupDir() {
	if d.ownDir {
		_ = os.RemoveAll(d.Dir)
		d.ownDir = false
	}
}

// logTail returns the end of the server's log for error messages.
func (d *Distribution) logTail() string {
	b, err := os.ReadFile(d.LogFile)
	if err != nil {
		return "(no log)"
	}
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(empty)"
	}
	return string(b)
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
