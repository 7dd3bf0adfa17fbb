package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// [registry."host"] tables and [[registry.config]] entries for one host
// merge, in either order; a key given twice with one value is fine.
func TestRegistryTablesMerge(t *testing.T) {
	t.Parallel()
	doc := `
[registry."docker.io"]
mirrors = ["mirror.local:5000"]

[[registry.config]]
host = "docker.io"
config-file = "/home/user/.docker/config.json"

[[registry.config]]
host = "mirror.local:5000"
insecure = true

[registry."mirror.local:5000"]
http = true
insecure = true
ca = ["/etc/kiln/ca.pem"]
`
	cfg, _, err := Load(strings.NewReader(doc), "kilnd.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]RegistryHost{
		"docker.io":         {Mirrors: []string{"mirror.local:5000"}, ConfigFile: "/home/user/.docker/config.json"},
		"mirror.local:5000": {HTTP: true, Insecure: true, CA: []string{"/etc/kiln/ca.pem"}},
	}
	if diff := cmp.Diff(want, cfg.Registry); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A semantic error in a merged host still names a line.
func TestRegistryMergedHostErrors(t *testing.T) {
	t.Parallel()
	doc := "[registry.\"r:5000\"]\nhttp = true\n[[registry.config]]\nhost = \"r:5000\"\npassword = \"x\"\n"
	_, _, err := Load(strings.NewReader(doc), "kilnd.toml")
	if err == nil || err.Error() != "kilnd.toml:5: [[registry.config]] password: username is not set: a password needs a username" {
		t.Fatalf("got %v, want the error at the password's line", err)
	}
}
