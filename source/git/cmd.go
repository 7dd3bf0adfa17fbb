package git

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/proclog"
)

// Auth is what a build brings to reach a remote. The zero value is an
// anonymous build.
type Auth struct {
	// Header is the value of an Authorization header sent to an http(s)
	// remote, e.g. "Bearer <token>" or "Basic <base64>" (from a build
	// secret such as GIT_AUTH_TOKEN). It reaches git through the
	// environment, never the command line.
	Header string
	// SSHAuthSock is the path of an ssh agent socket (forwarded from the
	// client) for ssh remotes.
	SSHAuthSock string
	// KnownHosts is the content of a known_hosts file that ssh host keys
	// must match. Without it the cache trusts a host's key on first use
	// and refuses a changed key later (<dir>/home/.ssh/known_hosts).
	KnownHosts string
}

// fingerprint tells apart the credentials of two builds, so that they do
// not share a remote operation, without keeping the secrets themselves.
func (a Auth) fingerprint() string {
	if a == (Auth{}) {
		return ""
	}
	h := sha256.Sum256([]byte(a.Header + "\x00" + a.SSHAuthSock + "\x00" + a.KnownHosts))
	return hex.EncodeToString(h[:8])
}

// runOpts says how to run one git command.
type runOpts struct {
	dir       string // working directory ("" for the cache's home)
	remote    string // the remote the command talks to, for auth and scrubbing
	auth      Auth
	localFile bool     // allow the file transport (fetching from the cache's own repository)
	env       []string // more environment
}

// cmdError is a failed git command: its brief stderr, or how it failed.
type cmdError struct {
	stderr string
	err    error
}

func (e *cmdError) Error() string {
	if e.stderr == "" {
		return e.err.Error()
	}
	if classify(e.stderr) == errdefs.ErrUnauthenticated {
		return e.stderr + " (the repository needs credentials it accepts: a token with kiln build --secret id=GIT_AUTH_TOKEN[.<host>], or an ssh agent with --ssh default)"
	}
	return e.stderr
}

func (e *cmdError) Unwrap() []error { return []error{e.err, classify(e.stderr)} }

// waitDelay bounds how long a cancelled git's helpers may hold its pipes.
const waitDelay = 5 * time.Second

// run runs git with args and a clean environment and returns its stdout.
// It stops git and the processes it started when ctx ends.
func (c *Cache) run(ctx context.Context, o runOpts, args ...string) ([]byte, error) {
	if c.binErr != nil {
		return nil, c.binErr
	}
	env, cleanup, err := c.env(o)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = o.dir
	if cmd.Dir == "" {
		cmd.Dir = c.home
	}
	cmd.Env = env
	var stdout bytes.Buffer
	stderr := proclog.NewStderr()
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	cmd.WaitDelay = waitDelay
	setProcessGroup(cmd)
	err = cmd.Run()
	// git's stderr is a record of its own in the daemon's log, scrubbed
	// like the error.
	stderr.Log(ctx, c.log, "git", args, err, func(s string) string { return scrub(s, o.remote) })
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, &cmdError{stderr: brief(scrub(stderr.String(), o.remote)), err: err}
	}
	return stdout.Bytes(), nil
}

// env is the whole environment of a git command: nothing from the
// daemon's own except PATH, the proxy settings and the CA locations.
func (c *Cache) env(o runOpts) ([]string, func(), error) {
	protocols := strings.Join(networkProtocols, ":")
	if c.allowFile || o.localFile {
		protocols += ":file"
	}
	env := []string{
		"HOME=" + c.home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ALLOW_PROTOCOL=" + protocols,
		"LC_ALL=C",
	}
	for _, k := range []string{"PATH", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}

	cleanup := func() {}
	ssh := "ssh -F /dev/null -o BatchMode=yes"
	if o.auth.KnownHosts != "" {
		f, err := os.CreateTemp(c.tmp, "known_hosts-")
		if err != nil {
			return nil, nil, fmt.Errorf("git source: %w", err)
		}
		cleanup = func() { _ = os.Remove(f.Name()) }
		_, werr := f.WriteString(o.auth.KnownHosts)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			cleanup()
			return nil, nil, fmt.Errorf("git source: %w", werr)
		}
		ssh += " -o StrictHostKeyChecking=yes -o UserKnownHostsFile=" + shellQuote(f.Name())
	} else {
		ssh += " -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=" + shellQuote(c.knownHosts)
	}
	env = append(env, "GIT_SSH_COMMAND="+ssh)
	if o.auth.SSHAuthSock != "" {
		env = append(env, "SSH_AUTH_SOCK="+o.auth.SSHAuthSock)
	}

	config := [][2]string{
		{"gc.auto", "0"},
		{"core.logAllRefUpdates", "false"},
		{"init.defaultBranch", "main"},
		{"advice.detachedHead", "false"},
		{"core.hooksPath", "/dev/null"},
	}
	if o.auth.Header != "" {
		if scope := headerScope(o.remote); scope != "" {
			config = append(config, [2]string{"http." + scope + ".extraHeader", "Authorization: " + o.auth.Header})
		}
	}
	env = append(env, fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(config)))
	for i, kv := range config {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	return append(env, o.env...), cleanup, nil
}

// headerScope is the URL an Authorization header is limited to: the
// remote without credentials, query or fragment; "" for a remote that is
// not http(s).
func headerScope(remote string) string {
	u, err := url.Parse(remote)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// brief keeps the lines of git's stderr that say what went wrong.
func brief(stderr string) string {
	var keep []string
	last := ""
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		last = l
		for _, p := range []string{"fatal: ", "error: ", "ERROR: "} {
			if rest, ok := strings.CutPrefix(l, p); ok {
				keep = append(keep, rest)
				break
			}
		}
	}
	s := strings.Join(keep, "; ")
	if s == "" {
		s = last
	}
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// classify guesses the error class from git's stderr.
func classify(stderr string) error {
	s := strings.ToLower(stderr)
	has := func(subs ...string) bool {
		for _, sub := range subs {
			if strings.Contains(s, sub) {
				return true
			}
		}
		return false
	}
	switch {
	case has("authentication failed", "could not read username", "could not read password",
		"terminal prompts disabled", "permission denied (publickey"):
		return errdefs.ErrUnauthenticated
	case has("host key verification failed", "remote host identification has changed"):
		return errdefs.ErrPermissionDenied
	case has("not found", "does not appear to be a git repository", "couldn't find remote ref",
		"not our ref", "no such remote ref", "unadvertised object"):
		return errdefs.ErrNotFound
	case has("could not resolve host", "connection refused", "connection timed out", "timed out",
		"connection reset", "unable to access", "failed to connect", "the remote end hung up"):
		return errdefs.ErrUnavailable
	default:
		return errdefs.ErrFailedPrecondition
	}
}

// shellQuote quotes s for sh (GIT_SSH_COMMAND is run by a shell).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
