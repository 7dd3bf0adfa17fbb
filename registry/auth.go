package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	clitypes "github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
)

// credential is a set of credentials and where they came from, so that a
// 401 can say which ones to check. Secrets never enter messages.
type credential struct {
	cfg     authn.AuthConfig
	source  string // "" when anonymous
	unknown bool   // WrapError: the request's credentials are not known here
}

func (c credential) empty() bool {
	return c.cfg.Username == "" && c.cfg.Password == "" && c.cfg.IdentityToken == "" &&
		c.cfg.RegistryToken == "" && c.cfg.Auth == ""
}

// credentialsFor picks the credentials for a registry host: the build
// client's first, then the host's username/password, then its config file.
// The client's come first so that a user's own login reaches repositories
// the daemon's shared credentials cannot.
func (r *Resolver) credentialsFor(ctx context.Context, key string, h *host) (credential, error) {
	if r.creds != nil {
		cfg, ok, err := r.creds(ctx, key)
		if err != nil {
			return credential{}, fmt.Errorf("get the client's credentials for %s: %w", key, err)
		}
		if c := (credential{cfg: cfg, source: "the client's credentials (docker login " + key + ")"}); ok && !c.empty() {
			return c, nil
		}
	}
	if h.cfg.Username != "" {
		return credential{
			cfg:    authn.AuthConfig{Username: h.cfg.Username, Password: h.cfg.Password},
			source: "the username/password configured for " + h.key,
		}, nil
	}
	if h.cfg.ConfigFile != "" {
		cfg, err := dockerConfigCredentials(h.cfg.ConfigFile, key)
		if err != nil {
			return credential{}, err
		}
		if c := (credential{cfg: cfg, source: "config-file " + h.cfg.ConfigFile}); !c.empty() {
			return c, nil
		}
	}
	return credential{}, nil
}

// loadDockerConfig reads a docker config.json; a syntax error names the
// line.
func loadDockerConfig(path string) (*configfile.ConfigFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config-file: %w", err)
	}
	cf := configfile.New(path)
	if err := cf.LoadFromReader(bytes.NewReader(b)); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("config-file %s:%d: invalid JSON: %v", path, lineOf(b, se.Offset), se)
		case errors.As(err, &te):
			return nil, fmt.Errorf("config-file %s:%d: %s has the wrong type (%s, want %s)", path, lineOf(b, te.Offset), te.Field, te.Value, te.Type)
		default:
			return nil, fmt.Errorf("config-file %s: %w", path, err)
		}
	}
	return cf, nil
}

// dockerConfigCredentials returns the credentials a docker config.json has
// for a registry host: from its credential helper (credHelpers, then
// credsStore) when one is set, else from auths, whose keys may be URLs
// ("https://index.docker.io/v1/") or host names.
func dockerConfigCredentials(path, key string) (authn.AuthConfig, error) {
	cf, err := loadDockerConfig(path)
	if err != nil {
		return authn.AuthConfig{}, err
	}
	// Docker keys Docker Hub by its historical v1 URL.
	serverKey := key
	if key == DockerHub {
		serverKey = authn.DefaultAuthKey
	}
	helper := cf.CredentialsStore
	for _, k := range []string{serverKey, key} {
		if hh, ok := cf.CredentialHelpers[k]; ok {
			helper = hh
			break
		}
	}
	var ac clitypes.AuthConfig
	if helper != "" {
		ac, err = credentials.NewNativeStore(cf, helper).Get(serverKey)
		if err != nil {
			return authn.AuthConfig{}, fmt.Errorf("config-file %s: credential helper docker-credential-%s: %w", path, helper, err)
		}
	} else {
		ac = lookupAuths(cf.AuthConfigs, serverKey, key)
	}
	return authn.AuthConfig{
		Username:      ac.Username,
		Password:      ac.Password,
		IdentityToken: ac.IdentityToken,
		RegistryToken: ac.RegistryToken,
	}, nil
}

// lookupAuths finds key's entry in auths: an exact key first, then any key
// whose host (scheme and path dropped, Docker Hub aliases merged) matches.
func lookupAuths(auths map[string]clitypes.AuthConfig, serverKey, key string) clitypes.AuthConfig {
	if ac, ok := auths[serverKey]; ok {
		return ac
	}
	keys := make([]string, 0, len(auths))
	for k := range auths {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic when several keys match
	for _, k := range keys {
		if HostKey(credentials.ConvertToHostname(k)) == key {
			return auths[k]
		}
	}
	return clitypes.AuthConfig{}
}

// lineOf returns the 1-based line of a byte offset.
func lineOf(b []byte, offset int64) int {
	line := 1
	for i := int64(0); i < offset && i < int64(len(b)); i++ {
		if b[i] == '\n' {
			line++
		}
	}
	return line
}
