package git

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/kiln-build/kiln/core/errdefs"
)

// The git transports a remote may use. file is allowed only when the
// cache was made WithFileRemotes; ext, fd and other remote helpers never
// (GIT_ALLOW_PROTOCOL enforces the list inside git too, for redirects and
// submodules).
var networkProtocols = []string{"https", "http", "ssh", "git"}

// scpLike matches git's scp-like ssh syntax, [user@]host:path.
var scpLike = regexp.MustCompile(`^(?:[^@/:\s]+@)?[^@/:\s]+:[^/]`)

// commitRe matches a full commit id (SHA-1 or SHA-256 repositories).
var commitRe = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)

// shortHexRe matches an abbreviated commit id.
var shortHexRe = regexp.MustCompile(`^[0-9a-f]{4,63}$`)

func isCommit(ref string) bool { return commitRe.MatchString(ref) }

// checkRemote returns the transport of remote, or an error saying why it
// cannot be used.
func checkRemote(remote string, allowFile bool) (string, error) {
	if remote == "" {
		return "", errdefs.Invalidf("git source: no remote")
	}
	if strings.HasPrefix(remote, "-") || strings.ContainsFunc(remote, isControl) {
		return "", errdefs.Invalidf("git source %q: invalid remote", redact(remote))
	}
	if strings.Contains(remote, "::") {
		return "", errdefs.Invalidf("git source %s: remote helpers (transport::address) are not allowed", redact(remote))
	}
	if !strings.Contains(remote, "://") {
		if scpLike.MatchString(remote) {
			host, _, _ := strings.Cut(remote, ":")
			if _, h, ok := strings.Cut(host, "@"); ok {
				host = h
			}
			if strings.HasPrefix(host, "-") {
				return "", errdefs.Invalidf("git source %q: invalid host", remote)
			}
			return "ssh", nil
		}
		return "", errdefs.Invalidf("git source %s: not a remote URL (want https://, ssh://, git:// or user@host:path)", redact(remote))
	}
	u, err := url.Parse(remote)
	if err != nil {
		return "", errdefs.Invalidf("git source %s: invalid URL: %v", redact(remote), err)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "file" && allowFile:
		return scheme, nil
	case scheme == "file":
		return "", errdefs.WithClass(errdefs.ErrPermissionDenied,
			fmt.Errorf("git source %s: file:// remotes are not allowed (they read the daemon's filesystem)", redact(remote)))
	}
	for _, p := range networkProtocols {
		if scheme == p {
			if u.Host == "" {
				return "", errdefs.Invalidf("git source %s: no host", redact(remote))
			}
			if strings.HasPrefix(u.Hostname(), "-") || strings.HasPrefix(u.User.Username(), "-") {
				// ssh would take them for options.
				return "", errdefs.Invalidf("git source %s: invalid host or user", redact(remote))
			}
			return scheme, nil
		}
	}
	return "", errdefs.Invalidf("git source %s: unsupported transport %q (want https, http, ssh or git)", redact(remote), u.Scheme)
}

// checkRef rejects refs git would not accept and ones that could be taken
// for options or revision syntax.
func checkRef(ref string) error {
	bad := ref != "" && (strings.HasPrefix(ref, "-") || strings.HasPrefix(ref, "/") ||
		strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") || strings.HasSuffix(ref, ".lock") ||
		strings.Contains(ref, "..") || strings.Contains(ref, "@{") || strings.Contains(ref, "//") ||
		strings.ContainsAny(ref, " ~^:?*[\\") || strings.ContainsFunc(ref, isControl))
	if bad {
		return errdefs.Invalidf("git source: invalid ref %q", ref)
	}
	return nil
}

// cleanSubdir returns subdir as a relative slash path ("" for the root),
// or an error if it leaves the repository.
func cleanSubdir(subdir string) (string, error) {
	if strings.ContainsFunc(subdir, isControl) {
		return "", errdefs.Invalidf("git source: invalid subdirectory %q", subdir)
	}
	for _, el := range strings.Split(subdir, "/") {
		if el == ".." {
			return "", errdefs.Invalidf("git source: subdirectory %q leaves the repository", subdir)
		}
	}
	return strings.TrimPrefix(path.Clean("/"+subdir), "/"), nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// redact hides credentials in a remote for messages, records and the
// .git/config of a kept git directory: the password, and for http(s) a
// lone user name too (tokens are often passed that way).
func redact(remote string) string {
	if !strings.Contains(remote, "://") {
		return remote
	}
	u, err := url.Parse(remote)
	if err != nil || u.User == nil {
		return remote
	}
	if _, ok := u.User.Password(); ok {
		return u.Redacted()
	}
	if s := strings.ToLower(u.Scheme); s == "http" || s == "https" {
		u.User = url.User("xxxxx")
	}
	return u.String()
}

// scrub removes the credentials of remote from git's output.
func scrub(s, remote string) string {
	if r := redact(remote); r != remote {
		s = strings.ReplaceAll(s, remote, r)
		if u, err := url.Parse(remote); err == nil && u.User != nil {
			s = strings.ReplaceAll(s, u.User.String()+"@", "")
		}
	}
	return s
}
