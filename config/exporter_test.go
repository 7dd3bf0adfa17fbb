package config

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestLoadExporterPlugins(t *testing.T) {
	t.Parallel()
	doc := `
[[exporter.plugin]]
name = "archive"
command = ["/usr/local/bin/kiln-export-archive", "--verbose"]
env = ["ARCHIVE_ROOT=/srv/images", "TOKEN=a=b"]
timeout = "10m"

[[exporter.plugin]]
name = "s3.eu-west_1"
command = ["/opt/s3"]
timeout = 30
`
	cfg, warns, err := LoadFor(strings.NewReader(doc), "kilnd.toml", rootEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings = %v, want none", warns)
	}
	want := []ExporterPlugin{
		{Name: "archive", Command: []string{"/usr/local/bin/kiln-export-archive", "--verbose"}, Env: []string{"ARCHIVE_ROOT=/srv/images", "TOKEN=a=b"}, Timeout: Duration(10 * time.Minute)},
		{Name: "s3.eu-west_1", Command: []string{"/opt/s3"}, Timeout: Duration(30 * time.Second)},
	}
	if diff := cmp.Diff(want, cfg.Exporter.Plugin); diff != "" {
		t.Errorf("plugins (-want +got):\n%s", diff)
	}

	// --validate masks env values, and what it prints loads again.
	var buf bytes.Buffer
	if err := cfg.WriteTOML(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "/srv/images") || strings.Contains(out, "a=b") {
		t.Errorf("printed configuration shows env values:\n%s", out)
	}
	if !strings.Contains(out, `ARCHIVE_ROOT=****`) {
		t.Errorf("printed configuration does not show the masked env entry:\n%s", out)
	}
	again, _, err := LoadFor(strings.NewReader(out), "out.toml", rootEnv)
	if err != nil {
		t.Fatalf("printed configuration does not load: %v\n%s", err, out)
	}
	if diff := cmp.Diff(cfg.Redacted(), again, cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if cfg.Exporter.Plugin[0].Env[0] != "ARCHIVE_ROOT=/srv/images" {
		t.Error("Redacted changed the original configuration")
	}
}

func TestLoadExporterPluginErrors(t *testing.T) {
	t.Parallel()
	const ok = "command = [\"/bin/true\"]\n"
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{
			name: "missing name",
			doc:  "[[exporter.plugin]]\n" + ok,
			want: `kilnd.toml:1: [[exporter.plugin]] name: missing: the output type users give, e.g. name = "s3" for kiln build -o type=s3`,
		},
		{
			name: "built-in name",
			doc:  "[[exporter.plugin]]\n" + ok + "name = \"oci\"\n",
			want: `kilnd.toml:3: [[exporter.plugin]] name: "oci" is a built-in output type; choose another name (built-in: image, registry, oci, docker, local, tar)`,
		},
		{
			name: "bad name",
			doc:  "[[exporter.plugin]]\nname = \"My Plugin\"\n" + ok,
			want: `kilnd.toml:2: [[exporter.plugin]] name: bad name "My Plugin": want lowercase letters, digits, '.', '_' or '-', starting with a letter or digit (at most 63)`,
		},
		{
			name: "name twice",
			doc:  "[[exporter.plugin]]\nname = \"a\"\n" + ok + "\n[[exporter.plugin]]\nname = \"a\"\n" + ok,
			want: `kilnd.toml:6: [[exporter.plugin]] name: "a" is already the name of plugin[0]`,
		},
		{
			name: "missing command",
			doc:  "[[exporter.plugin]]\nname = \"a\"\n",
			want: `kilnd.toml:1: [[exporter.plugin]] command: missing: the program and its arguments, e.g. command = ["/usr/local/bin/kiln-export-s3", "--region", "eu-west-1"]`,
		},
		{
			name: "relative program",
			doc:  "[[exporter.plugin]]\nname = \"a\"\ncommand = [\"kiln-export\", \"x\"]\n",
			want: `kilnd.toml:3: [[exporter.plugin]] command: the program must be an absolute path (it runs without a shell or PATH lookup), got "kiln-export"`,
		},
		{
			name: "command as a string",
			doc:  "[[exporter.plugin]]\nname = \"a\"\ncommand = \"/bin/x --y\"\n",
			want: `kilnd.toml:3: [[exporter.plugin]] command: wrong type: want an array of strings (["a", "b"]), got a string`,
		},
		{
			name: "env without a value",
			doc:  "[[exporter.plugin]]\nname = \"a\"\n" + ok + "env = [\"A=1\", \"SECRET\"]\n",
			want: `kilnd.toml:4: [[exporter.plugin]] env: bad entry (not shown: it may hold a secret): want KEY=VALUE`,
		},
		{
			name: "env with a bad name",
			doc:  "[[exporter.plugin]]\nname = \"a\"\n" + ok + "env = [\"A-B=1\"]\n",
			want: `kilnd.toml:4: [[exporter.plugin]] env: bad variable name "A-B": want KEY=VALUE, KEY of letters, digits and '_'`,
		},
		{
			name: "env setting a kilnd variable",
			doc:  "[[exporter.plugin]]\nname = \"a\"\n" + ok + "env = [\"KILN_EXPORTER_ATTRS={}\"]\n",
			want: `kilnd.toml:4: [[exporter.plugin]] env: KILN_EXPORTER_ATTRS: variables starting with KILN_EXPORTER_ are set by kilnd`,
		},
		{
			name: "bad timeout",
			doc:  "[[exporter.plugin]]\nname = \"a\"\n" + ok + "timeout = \"soon\"\n",
			want: `kilnd.toml:4: [[exporter.plugin]] timeout: bad duration "soon": want seconds (172800) or a duration ("48h", "90m", "7d")`,
		},
		{
			name: "unknown key",
			doc:  "[[exporter.plugin]]\nname = \"a\"\n" + ok + "shell = true\n",
			want: `kilnd.toml:4: [[exporter.plugin]] shell: unknown key`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, _, err := LoadFor(strings.NewReader(tt.doc), "kilnd.toml", rootEnv)
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want error %q", cfg.Exporter, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got: %s\nwant: %s", got, tt.want)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %v is not in the invalid-argument class", err)
			}
		})
	}
}
