package git

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/session"
)

// AuthFunc returns the credentials for one operation on remote (resolving
// a ref, fetching), and a release function to call when it is over.
type AuthFunc func(ctx context.Context, remote string) (Auth, func(), error)

// WithAuthFunc has the op ask f for credentials around each remote
// operation (they may need a client connection that must not outlive it,
// such as a relayed ssh agent). It takes precedence over WithAuth.
func WithAuthFunc(f AuthFunc) OpOption {
	return func(o *Op) { o.authFunc = f }
}

// Secret names a build's client gives git credentials under, as BuildKit's
// users know them. Each may carry a host suffix (GIT_AUTH_TOKEN.gitlab.com)
// that wins over the bare name for that host.
const (
	SecretAuthToken  = "GIT_AUTH_TOKEN"
	SecretAuthHeader = "GIT_AUTH_HEADER"
)

// SessionAuth returns the AuthFunc of a build whose client is sess.
//
// An http(s) remote gets an Authorization header from the build's secrets:
//
//   - GIT_AUTH_HEADER[.host] holding a whole header value ("Bearer abc",
//     "Basic dXNlcjpwYXNz") is sent as it is;
//   - GIT_AUTH_TOKEN[.host] alone is sent as Basic with the user name
//     x-access-token (what GitHub, Gitea and GitLab accept for tokens);
//   - GIT_AUTH_HEADER[.host] holding only a scheme, "basic" or "bearer",
//     says how to send the token: "Bearer <token>", or Basic of the token
//     when it is user:password (x-access-token:<token> when it has no
//     colon).
//
// An ssh remote gets the client's default ssh agent (kiln build --ssh
// default), relayed through a socket in dir for the operation's duration.
// Without either, the remote is reached anonymously.
func SessionAuth(sess session.Session, dir string) AuthFunc {
	return func(ctx context.Context, remote string) (Auth, func(), error) {
		nothing := func() {}
		transport, err := checkRemote(remote, true)
		if err != nil {
			return Auth{}, nothing, err
		}
		switch transport {
		case "https", "http":
			u, err := url.Parse(remote)
			if err != nil {
				return Auth{}, nothing, err
			}
			header, err := headerFromSecrets(ctx, sess, u.Hostname())
			return Auth{Header: header}, nothing, err
		case "ssh":
			return agentAuth(ctx, sess, dir)
		}
		return Auth{}, nothing, nil
	}
}

// hostSecret returns the secret name.host, else name; nil when the client
// gives neither.
func hostSecret(ctx context.Context, sess session.Session, name, host string) ([]byte, error) {
	for _, id := range []string{name + "." + host, name} {
		v, err := sess.Secret(ctx, id)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("git credentials: secret %s: %w", id, err)
		}
		return v, nil
	}
	return nil, nil
}

func headerFromSecrets(ctx context.Context, sess session.Session, host string) (string, error) {
	hdr, err := hostSecret(ctx, sess, SecretAuthHeader, host)
	if err != nil {
		return "", err
	}
	tok, err := hostSecret(ctx, sess, SecretAuthToken, host)
	if err != nil {
		return "", err
	}
	return authHeader(strings.TrimSpace(string(hdr)), strings.TrimSpace(string(tok)))
}

// authHeader makes the Authorization header value of a GIT_AUTH_HEADER
// and a GIT_AUTH_TOKEN secret (either may be empty).
func authHeader(header, token string) (string, error) {
	if strings.ContainsAny(header+token, "\r\n") {
		return "", errdefs.Invalidf("git credentials: %s and %s must be one line", SecretAuthHeader, SecretAuthToken)
	}
	basic := func(cred string) string {
		if !strings.Contains(cred, ":") {
			cred = "x-access-token:" + cred
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(cred))
	}
	switch scheme := strings.ToLower(header); {
	case header == "" && token == "":
		return "", nil
	case scheme == "basic" || scheme == "bearer":
		if token == "" {
			return "", errdefs.Invalidf("git credentials: %s says %q but there is no %s secret", SecretAuthHeader, header, SecretAuthToken)
		}
		if scheme == "bearer" {
			return "Bearer " + token, nil
		}
		return basic(token), nil
	case header != "":
		return header, nil
	}
	return basic(token), nil
}

// agentAuth relays the client's default ssh agent, if it forwards one,
// through a socket of its own in dir.
func agentAuth(ctx context.Context, sess session.Session, dir string) (Auth, func(), error) {
	nothing := func() {}
	probe, err := sess.DialSSH(ctx, "default")
	if errdefs.IsNotFound(err) {
		return Auth{}, nothing, nil
	}
	if err != nil {
		return Auth{}, nothing, fmt.Errorf("git credentials: ssh agent: %w", err)
	}
	_ = probe.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Auth{}, nothing, err
	}
	sub, err := os.MkdirTemp(dir, "agent-")
	if err != nil {
		return Auth{}, nothing, err
	}
	sock := filepath.Join(sub, "agent.sock")
	relay, err := session.ServeAgent(context.WithoutCancel(ctx), sess, "default", sock)
	if err != nil {
		_ = os.RemoveAll(sub)
		return Auth{}, nothing, fmt.Errorf("git credentials: ssh agent socket: %w", err)
	}
	return Auth{SSHAuthSock: sock}, func() {
		_ = relay.Close()
		_ = os.RemoveAll(sub)
	}, nil
}
