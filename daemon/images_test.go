package daemon

import (
	"testing"

	"github.com/kiln-build/kiln/api"
)

func TestRequestCredentials(t *testing.T) {
	t.Parallel()
	if requestCredentials(nil) != nil {
		t.Error("no credentials should give a nil function")
	}
	fn := requestCredentials([]*api.RegistryCredential{
		{Host: "index.docker.io", Username: "hub", Secret: "s1"},
		{Host: "reg.local:5000", IdentityToken: "tok"},
	})
	tests := []struct {
		host, user, pass, token string
		ok                      bool
	}{
		{host: "docker.io", user: "hub", pass: "s1", ok: true},
		{host: "reg.local:5000", token: "tok", ok: true},
		{host: "other:5000"},
	}
	for _, tc := range tests {
		got, ok, err := fn(t.Context(), tc.host)
		if err != nil || ok != tc.ok || got.Username != tc.user || got.Password != tc.pass || got.IdentityToken != tc.token {
			t.Errorf("credentials for %s = %+v, %v, %v", tc.host, got, ok, err)
		}
	}
}
