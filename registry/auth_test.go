package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kiln-build/kiln/core/errdefs"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestDockerConfigCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config string
		key    string
		want   authn.AuthConfig
	}{
		{
			name:   "auth field",
			config: `{"auths": {"127.0.0.1:5000": {"auth": "` + b64("alice:s3cret") + `"}}}`,
			key:    "127.0.0.1:5000",
			want:   authn.AuthConfig{Username: "alice", Password: "s3cret"},
		},
		{
			name:   "username and password under a URL key",
			config: `{"auths": {"https://127.0.0.1:5000/v2/": {"username": "bob", "password": "pw"}}}`,
			key:    "127.0.0.1:5000",
			want:   authn.AuthConfig{Username: "bob", Password: "pw"},
		},
		{
			name:   "docker hub v1 key",
			config: `{"auths": {"https://index.docker.io/v1/": {"auth": "` + b64("hubuser:hubpw") + `"}}}`,
			key:    "docker.io",
			want:   authn.AuthConfig{Username: "hubuser", Password: "hubpw"},
		},
		{
			name:   "docker hub plain key",
			config: `{"auths": {"index.docker.io": {"auth": "` + b64("hubuser:pw:with:colons") + `"}}}`,
			key:    "docker.io",
			want:   authn.AuthConfig{Username: "hubuser", Password: "pw:with:colons"},
		},
		{
			name:   "identity token",
			config: `{"auths": {"registry.example.com": {"username": "00000000-0000-0000-0000-000000000000", "identitytoken": "refresh-me"}}}`,
			key:    "registry.example.com",
			want:   authn.AuthConfig{Username: "00000000-0000-0000-0000-000000000000", IdentityToken: "refresh-me"},
		},
		{
			name:   "other host only",
			config: `{"auths": {"other:5000": {"auth": "` + b64("x:y") + `"}}}`,
			key:    "127.0.0.1:5000",
			want:   authn.AuthConfig{},
		},
		{
			name:   "empty file",
			config: ``,
			key:    "127.0.0.1:5000",
			want:   authn.AuthConfig{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, t.TempDir(), "config.json", tc.config)
			got, err := dockerConfigCredentials(p, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCredentialHelper runs a docker-credential-* helper from PATH, as
// credsStore and credHelpers name them. It changes PATH, so it does not run
// in parallel.
func TestCredentialHelper(t *testing.T) {
	dir := t.TempDir()
	// The helper protocol: "get" with the server URL on stdin, JSON out.
	writeFile(t, dir, "docker-credential-kilntest", `#!/bin/sh
read server
case "$server" in
  127.0.0.1:5000) echo '{"ServerURL":"127.0.0.1:5000","Username":"helperuser","Secret":"helperpw"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"<token>","Secret":"hubtoken"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`)
	if err := os.Chmod(filepath.Join(dir, "docker-credential-kilntest"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))

	tests := []struct {
		name, config, key string
		want              authn.AuthConfig
	}{
		{"credsStore", `{"credsStore": "kilntest"}`, "127.0.0.1:5000", authn.AuthConfig{Username: "helperuser", Password: "helperpw"}},
		{"credHelpers", `{"credHelpers": {"127.0.0.1:5000": "kilntest"}}`, "127.0.0.1:5000", authn.AuthConfig{Username: "helperuser", Password: "helperpw"}},
		{"identity token for hub", `{"credsStore": "kilntest"}`, "docker.io", authn.AuthConfig{IdentityToken: "hubtoken"}},
		{"not found", `{"credsStore": "kilntest"}`, "other:5000", authn.AuthConfig{}},
		{"helper wins over auths", `{"credsStore": "kilntest", "auths": {"127.0.0.1:5000": {"auth": "` + b64("file:pw") + `"}}}`, "127.0.0.1:5000", authn.AuthConfig{Username: "helperuser", Password: "helperpw"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "config.json", tc.config)
			got, err := dockerConfigCredentials(p, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
		})
	}

	p := writeFile(t, dir, "missing-helper.json", `{"credsStore": "kiln-no-such-helper"}`)
	if _, err := dockerConfigCredentials(p, "127.0.0.1:5000"); err == nil || !strings.Contains(err.Error(), "docker-credential-kiln-no-such-helper") {
		t.Errorf("missing helper: err = %v, want it named", err)
	}
}

// forwarded is a CredentialFunc that records the hosts it was asked about.
type forwarded struct {
	mu    sync.Mutex
	asked []string
	creds map[string]authn.AuthConfig
	err   error
}

func (f *forwarded) get(_ context.Context, host string) (authn.AuthConfig, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, host)
	c, ok := f.creds[host]
	return c, ok, f.err
}

func TestCredentialPrecedence(t *testing.T) {
	t.Parallel()
	s := startServer(t, "alice", "s3cret")
	s.push(t, "app:1", randomImage(t))
	dir := t.TempDir()
	goodFile := writeFile(t, dir, "good.json", `{"auths": {"`+s.host+`": {"auth": "`+b64("alice:s3cret")+`"}}}`)
	badFile := writeFile(t, dir, "bad.json", `{"auths": {"http://`+s.host+`": {"username": "alice", "password": "nope"}}}`)
	right := authn.AuthConfig{Username: "alice", Password: "s3cret"}
	wrong := authn.AuthConfig{Username: "alice", Password: "wrong"}

	prefix := "pull " + s.host + "/app:1: registry " + s.host + " answered 401 Unauthorized: "
	tests := []struct {
		name    string
		host    HostConfig
		client  *forwarded
		wantErr string // empty: the pull works
	}{
		{name: "config-file", host: HostConfig{ConfigFile: goodFile}},
		{name: "username/password", host: HostConfig{Username: "alice", Password: "s3cret"}},
		{name: "username wins over config-file", host: HostConfig{Username: "alice", Password: "s3cret", ConfigFile: badFile}},
		{name: "client wins over daemon", host: HostConfig{ConfigFile: badFile}, client: &forwarded{creds: map[string]authn.AuthConfig{s.host: right}}},
		{name: "client without credentials for the host", host: HostConfig{ConfigFile: goodFile}, client: &forwarded{creds: map[string]authn.AuthConfig{"other": wrong}}},
		{
			name: "none", host: HostConfig{},
			wantErr: prefix + "no credentials for " + s.host + ": log in on the client (docker login " + s.host + ") or configure username/password or config-file for " + s.host,
		},
		{
			name: "wrong password", host: HostConfig{Username: "alice", Password: "wrong"},
			wantErr: prefix + "check the credentials for " + s.host + " (wrong password?); they came from the username/password configured for " + s.host,
		},
		{
			name: "wrong config-file", host: HostConfig{ConfigFile: badFile},
			wantErr: prefix + "check the credentials for " + s.host + " (wrong password?); they came from config-file " + badFile,
		},
		{
			name: "wrong client credentials", host: HostConfig{ConfigFile: goodFile}, client: &forwarded{creds: map[string]authn.AuthConfig{s.host: wrong}},
			wantErr: prefix + "check the credentials for " + s.host + " (wrong password?); they came from the client's credentials (docker login " + s.host + ")",
		},
		{
			name: "client failure", host: HostConfig{ConfigFile: goodFile}, client: &forwarded{err: errors.New("session closed")},
			wantErr: "pull " + s.host + "/app:1: registry " + s.host + ": get the client's credentials for " + s.host + ": session closed",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := New(map[string]HostConfig{s.host: tc.host}, fastRetry)
			if err != nil {
				t.Fatal(err)
			}
			if tc.client != nil {
				r = r.WithCredentials(tc.client.get)
			}
			_, err = r.Head(context.Background(), mustRef(t, s.host+"/app:1"))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("pull failed: %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("pull worked, want an error")
				}
				if diff := cmp.Diff(tc.wantErr, err.Error()); diff != "" {
					t.Errorf("message (-want +got):\n%s", diff)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "nope") {
					t.Errorf("a password leaked into the error: %v", err)
				}
			}
			if tc.client != nil && (len(tc.client.asked) == 0 || tc.client.asked[0] != s.host) {
				t.Errorf("client asked for %v, want %s", tc.client.asked, s.host)
			}
		})
	}

	// The 401 class is what callers test for.
	r, _ := New(nil, fastRetry)
	_, err := r.Head(context.Background(), mustRef(t, s.host+"/app:1"))
	if !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("err = %v, want unauthenticated", err)
	}
}

// loopbackOnly is a transport that cannot leave the machine, for tests that
// name Docker Hub.
func loopbackOnly() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || !isLoopback(host) {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("test transport: only loopback")}
		}
		return dialer.DialContext(ctx, network, addr)
	}
	t.Proxy = nil
	return t
}

func TestDockerHubMirror(t *testing.T) {
	t.Parallel()
	m := startServer(t, "alice", "s3cret")
	m.push(t, "library/busybox:latest", randomImage(t))
	client := &forwarded{creds: map[string]authn.AuthConfig{m.host: {Username: "alice", Password: "s3cret"}}}
	r, err := New(map[string]HostConfig{"index.docker.io": {Mirrors: []string{m.host}}}, WithTransport(loopbackOnly()))
	if err != nil {
		t.Fatal(err)
	}
	r = r.WithCredentials(client.get)
	desc, err := r.Get(context.Background(), mustRef(t, "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := desc.Source.String(), m.host+"/library/busybox:latest"; got != want {
		t.Errorf("served from %s, want %s", got, want)
	}
	if diff := cmp.Diff([]string{m.host}, client.asked); diff != "" {
		t.Errorf("client asked for (-want +got):\n%s", diff)
	}
	if got := m.lastAuth(); !strings.HasPrefix(got, "Basic ") {
		t.Errorf("mirror got Authorization %q, want the forwarded basic credentials", got)
	}

	// A missing image falls through to Docker Hub, which this test
	// transport cannot reach; the error names docker.io, not index.docker.io.
	_, err = r.Get(context.Background(), mustRef(t, "kiln-test/missing:1"))
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if !strings.HasPrefix(err.Error(), "pull docker.io/kiln-test/missing:1: cannot reach registry docker.io: ") {
		t.Errorf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "mirrors tried first: registry "+m.host+": repository library/kiln-test/missing unknown") &&
		!strings.Contains(err.Error(), "mirrors tried first: registry "+m.host+": repository kiln-test/missing unknown") {
		t.Errorf("err does not report the mirror's answer: %v", err)
	}
}
