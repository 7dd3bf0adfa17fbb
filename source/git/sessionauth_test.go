package git

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/internal/testutil"
)

func TestAuthHeaderOfSecrets(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, header, token string
		want                string
		wantErr             bool
	}{
		{name: "nothing"},
		{name: "token alone: basic x-access-token", token: "ghp_abc", want: "Basic " + b64("x-access-token:ghp_abc")},
		{name: "whole header", header: "Bearer xyz", want: "Bearer xyz"},
		{name: "whole header wins over a token", header: "Basic " + b64("u:p"), token: "ignored", want: "Basic " + b64("u:p")},
		{name: "bearer scheme", header: "bearer", token: "xyz", want: "Bearer xyz"},
		{name: "Basic scheme, user:password", header: "Basic", token: "gerrit:pw", want: "Basic " + b64("gerrit:pw")},
		{name: "basic scheme, bare token", header: "basic", token: "tok", want: "Basic " + b64("x-access-token:tok")},
		{name: "scheme without a token", header: "bearer", wantErr: true},
		{name: "header injection", header: "Bearer a\r\nX-Evil: 1", wantErr: true},
		{name: "token with a newline", token: "a\nb", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := authHeader(tc.header, tc.token)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("authHeader(%q, %q) = %q, %v; want %q (error %v)", tc.header, tc.token, got, err, tc.want, tc.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "xyz") || strings.Contains(err.Error(), "a\nb")) {
				t.Errorf("the error shows a secret: %v", err)
			}
		})
	}
}

// A build's GIT_AUTH_* secrets reach a private http remote; the host's
// own secret wins over the bare one.
func TestSessionAuthHTTP(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := newGitServer(t, r.root) // wants "Bearer s3cret-t0ken"
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	host := u.Hostname()
	for _, tc := range []struct {
		name    string
		secrets map[string]string
		ok      bool
	}{
		{"no secrets", nil, false},
		{"whole header", map[string]string{"GIT_AUTH_HEADER": "Bearer s3cret-t0ken"}, true},
		{"scheme and token", map[string]string{"GIT_AUTH_HEADER": "bearer", "GIT_AUTH_TOKEN": "s3cret-t0ken"}, true},
		{"host secrets win", map[string]string{
			"GIT_AUTH_HEADER": "Bearer wrong", "GIT_AUTH_HEADER." + host: "bearer", "GIT_AUTH_TOKEN." + host: "s3cret-t0ken",
		}, true},
		{"another host's secret is not used", map[string]string{"GIT_AUTH_HEADER.git.example.com": "Bearer s3cret-t0ken"}, false},
		{"wrong token", map[string]string{"GIT_AUTH_TOKEN": "nope"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sess := &testutil.Session{Ref: "b", Secrets: map[string][]byte{}}
			for k, v := range tc.secrets {
				sess.Secrets[k] = []byte(v)
			}
			c := newCache(t)
			o := newOp(t, graph.GitSource{Remote: srv.URL + "/private/repo.git", Ref: "main"}, nopSnapshots{}, c,
				WithAuthFunc(SessionAuth(sess, t.TempDir())))
			_, err := o.CacheMap(context.Background())
			if tc.ok && err != nil {
				t.Fatalf("resolve with %v: %v", tc.secrets, err)
			}
			if !tc.ok {
				if !errors.Is(err, errdefs.ErrUnauthenticated) {
					t.Errorf("resolve with %v: %v, want an unauthenticated error", tc.secrets, err)
				}
				if err != nil && strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error shows the secret: %v", err)
				}
			}
		})
	}
}

// An ssh remote gets the client's agent relayed through a socket of its
// own, which is gone when the operation is over.
func TestSessionAuthSSHAgent(t *testing.T) {
	t.Parallel()
	agentDir, err := os.MkdirTemp("", "agent-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(agentDir) })
	l, err := net.Listen("unix", filepath.Join(agentDir, "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() { // an "agent" that echoes
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	relayDir, err := os.MkdirTemp("", "relay-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(relayDir) })

	// Without a forwarded agent: anonymous.
	auth, release, err := SessionAuth(&testutil.Session{}, relayDir)(context.Background(), "git@git.example.com:r.git")
	if err != nil || auth != (Auth{}) {
		t.Fatalf("without an agent: %+v, %v", auth, err)
	}
	release()

	sess := &testutil.Session{SSH: map[string]string{"default": l.Addr().String()}}
	auth, release, err = SessionAuth(sess, relayDir)(context.Background(), "ssh://git@git.example.com/r.git")
	if err != nil || auth.SSHAuthSock == "" || auth.Header != "" {
		t.Fatalf("with an agent: %+v, %v", auth, err)
	}
	c, err := net.Dial("unix", auth.SSHAuthSock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Errorf("through the relay: %q, %v", buf, err)
	}
	c.Close()
	release()
	if _, err := os.Stat(auth.SSHAuthSock); !os.IsNotExist(err) {
		t.Errorf("the relay socket is still there after release: %v", err)
	}
	// An http remote never gets the agent, an ssh remote never a header.
	auth, release, err = SessionAuth(&testutil.Session{SSH: sess.SSH, Secrets: map[string][]byte{"GIT_AUTH_TOKEN": []byte("t")}}, relayDir)(context.Background(), "git@h:r.git")
	if err != nil || auth.Header != "" {
		t.Errorf("ssh remote with a token secret: %+v, %v", auth, err)
	}
	release()
}
