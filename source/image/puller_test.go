package image

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/session"
)

// credSession is a session that only answers Credentials.
type credSession struct {
	session.Session // nil: other methods are not called
	c               session.Credential
	ok              bool
	err             error
}

func (s credSession) Credentials(context.Context, string) (session.Credential, bool, error) {
	return s.c, s.ok, s.err
}

func TestSessionCredentials(t *testing.T) {
	t.Parallel()
	gone := errdefs.WithClass(errdefs.ErrUnavailable, errors.New("client gone"))
	tests := []struct {
		name   string
		s      credSession
		want   authn.AuthConfig
		wantOK bool
		err    error
	}{
		{"login", credSession{c: session.Credential{Username: "u", Secret: "p"}, ok: true}, authn.AuthConfig{Username: "u", Password: "p"}, true, nil},
		{"token", credSession{c: session.Credential{IdentityToken: "tok"}, ok: true}, authn.AuthConfig{IdentityToken: "tok"}, true, nil},
		{"none", credSession{}, authn.AuthConfig{}, false, nil},
		{"client cannot answer", credSession{err: errdefs.NotFoundf("no credentials service")}, authn.AuthConfig{}, false, nil},
		{"client gone", credSession{err: gone}, authn.AuthConfig{}, false, gone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := SessionCredentials(tt.s)(t.Context(), "docker.io")
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if ok != tt.wantOK {
				t.Errorf("ok = %v, want %v", ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCacheCredentials(t *testing.T) {
	t.Parallel()
	calls := map[string]int{}
	fail := true
	fn := cacheCredentials(func(_ context.Context, host string) (authn.AuthConfig, bool, error) {
		calls[host]++
		if host == "flaky" && fail {
			fail = false
			return authn.AuthConfig{}, false, errors.New("temporary")
		}
		return authn.AuthConfig{Username: host}, host != "anon", nil
	})
	for range 3 {
		for _, h := range []string{"a", "b", "anon"} {
			cfg, ok, err := fn(t.Context(), h)
			if err != nil || cfg.Username != h || ok != (h != "anon") {
				t.Errorf("%s: %+v %v %v", h, cfg, ok, err)
			}
		}
	}
	if _, _, err := fn(t.Context(), "flaky"); err == nil {
		t.Error("the first flaky answer should fail")
	}
	if _, _, err := fn(t.Context(), "flaky"); err != nil {
		t.Errorf("errors are not cached, the second ask should work: %v", err)
	}
	if diff := cmp.Diff(map[string]int{"a": 1, "b": 1, "anon": 1, "flaky": 2}, calls); diff != "" {
		t.Errorf("asks per host (-want +got):\n%s", diff)
	}
}
