package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseOutputs(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		in         string
		typ        string
		attrs      map[string]string
		clientSide bool
		wantErr    string
	}{
		{name: "image", in: "type=image,name=app:1,push=true", typ: "image", attrs: map[string]string{"name": "app:1", "push": "true"}},
		{name: "registry", in: "type=registry,name=r:5000/a", typ: "registry", attrs: map[string]string{"name": "r:5000/a"}},
		{name: "oci file", in: "type=oci,dest=" + filepath.Join(dir, "o.tar"), typ: "oci", attrs: map[string]string{"dest": filepath.Join(dir, "o.tar")}, clientSide: true},
		{name: "oci stdout", in: "type=oci,dest=-", typ: "oci", attrs: map[string]string{"dest": "-"}, clientSide: true},
		{name: "bare directory", in: filepath.Join(dir, "out"), typ: "local", attrs: map[string]string{"dest": filepath.Join(dir, "out")}, clientSide: true},
		{name: "dash is a tar on stdout", in: "-", typ: "tar", attrs: map[string]string{"dest": "-"}, clientSide: true},
		{name: "quoted csv", in: `type=image,"name=a,b"`, typ: "image", attrs: map[string]string{"name": "a,b"}},
		{name: "no type", in: "dest=x", wantErr: "type is required"},
		{name: "not key=value", in: "type=oci,foo", wantErr: `"foo" is not key=value`},
		{name: "oci without dest", in: "type=oci", wantErr: "dest is required for type=oci"},
		{name: "docker without dest", in: "type=docker", wantErr: "type=docker needs dest=FILE"},
		{name: "missing directory", in: "type=oci,dest=" + filepath.Join(dir, "nope", "o.tar"), wantErr: "does not exist"},
		{name: "local to stdout", in: "type=local,dest=-", wantErr: "type=local needs a directory"},
	}
	if os.Geteuid() != 0 {
		// Root writes into a 0555 directory; everyone else must be refused.
		tests = append(tests, struct {
			name       string
			in         string
			typ        string
			attrs      map[string]string
			clientSide bool
			wantErr    string
		}{name: "read-only directory", in: "type=tar,dest=" + filepath.Join(ro, "t.tar"), wantErr: "is not writable"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs, err := parseOutputs([]string{tt.in})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseOutputs(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := outs[0].api
			if o.Type != tt.typ || o.ClientSide != tt.clientSide {
				t.Errorf("type %q client-side %v, want %q %v", o.Type, o.ClientSide, tt.typ, tt.clientSide)
			}
			if diff := cmp.Diff(tt.attrs, o.Attrs); diff != "" {
				t.Errorf("attrs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	if err := os.WriteFile(file, []byte("from-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_TEST_SECRET", "from-env")
	set, err := parseSecrets([]string{"id=a,src=" + file, "id=b,env=KILN_TEST_SECRET", "id=KILN_TEST_SECRET", "id=c,type=env,source=KILN_TEST_SECRET"})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"a": "from-file", "b": "from-env", "KILN_TEST_SECRET": "from-env", "c": "from-env"} {
		got, ok, err := set.lookup(id)
		if err != nil || !ok || string(got) != want {
			t.Errorf("secret %s = %q, %v, %v; want %q", id, got, ok, err, want)
		}
	}
	if _, ok, _ := set.lookup("missing"); ok {
		t.Errorf("an unknown secret was found")
	}
	for _, bad := range []string{"src=" + file, "id=x,src=" + filepath.Join(dir, "none"), "id=x,type=vault"} {
		if _, err := parseSecrets([]string{bad}); err == nil {
			t.Errorf("parseSecrets(%q) succeeded", bad)
		}
	}
}

func TestKeyValuesAndLists(t *testing.T) {
	t.Setenv("KILN_TEST_ARG", "env-value")
	got, err := keyValues([]string{"A=1", "B=", "KILN_TEST_ARG", "KILN_TEST_UNSET_ARG"}, "--build-arg", true)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "", "KILN_TEST_ARG": "env-value"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("build args (-want +got):\n%s", diff)
	}
	if _, err := keyValues([]string{"=x"}, "--build-arg", true); err == nil {
		t.Errorf("an empty key was accepted")
	}
	if _, err := keyValues([]string{"K"}, "--label", false); err == nil {
		t.Errorf("a label without a value was accepted")
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64", "linux/s390x"}, splitList([]string{"linux/amd64, linux/arm64", "linux/s390x"})); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
}

func TestParseSSH(t *testing.T) {
	dir := t.TempDir()
	notSocket := filepath.Join(dir, "key")
	if err := os.WriteFile(notSocket, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	for _, tt := range []struct{ in, want string }{
		{"default", "SSH_AUTH_SOCK is not set"},
		{"id=" + notSocket, "not an ssh agent socket"},
		{"id=" + filepath.Join(dir, "none"), "no such file"},
		{"=x", "want default or id="},
	} {
		if _, err := parseSSH([]string{tt.in}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseSSH(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestBuildArgsSourceDateEpoch(t *testing.T) {
	t.Parallel()
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want map[string]string
	}{
		{name: "from the environment", env: map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}, want: map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}},
		{name: "the flag wins", args: []string{"SOURCE_DATE_EPOCH=5"}, env: map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}, want: map[string]string{"SOURCE_DATE_EPOCH": "5"}},
		{name: "empty flag wins too", args: []string{"SOURCE_DATE_EPOCH="}, env: map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}, want: map[string]string{"SOURCE_DATE_EPOCH": ""}},
		{name: "unset", args: []string{"A=1"}, want: map[string]string{"A": "1"}},
		{name: "empty in the environment", env: map[string]string{"SOURCE_DATE_EPOCH": ""}, want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := buildArgs(tt.args, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
