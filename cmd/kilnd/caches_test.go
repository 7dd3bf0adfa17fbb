package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
)

// kilnd checks its shared cache tables with the registered backends: an
// unknown type or a bad key names the file and line.
func TestCheckCaches(t *testing.T) {
	t.Parallel()
	const redis = "[[cache.blob]]\ntype = \"filesystem\"\npath = \"/srv/cache\"\n[[cache.registry]]\ntype = \"redis\"\nredis-addr = \"redis://cache:6379\"\n"
	tests := []struct {
		name, doc, want string
	}{
		{
			name: "redis over a filesystem",
			doc:  redis + "ttl = \"168h\"\nexport = \"sync\"\nflush-timeout = 60\ncompression = \"gzip\"\n",
		},
		{
			name: "registry blob store",
			doc:  "[[cache.blob]]\ntype = \"registry\"\nref = \"reg.local:5000/app/cache\"\n",
		},
		{
			name: "unsupported cache index type",
			doc:  redis + "\n[[cache.registry]]\ntype = \"memcached\"\n",
			want: `kilnd.toml:9: [[cache.registry]] type: unsupported cache type "memcached" (supported: redis)`,
		},
		{
			name: "a per-build type is no index",
			doc:  "[[cache.registry]]\ntype = \"local\"\n",
			want: `kilnd.toml:2: [[cache.registry]] type: unsupported cache type "local" (supported: redis)`,
		},
		{
			name: "unsupported blob cache type",
			doc:  "[[cache.blob]]\ntype = \"s3\"\n",
			want: `kilnd.toml:2: [[cache.blob]] type: unsupported cache type "s3" (supported: filesystem, registry)`,
		},
		{
			name: "missing type",
			doc:  "[[cache.blob]]\npath = \"/srv/cache\"\n",
			want: `kilnd.toml:1: [[cache.blob]] type: missing: want one of filesystem, registry`,
		},
		{
			name: "unsupported shared cache export mode",
			doc:  redis + "export = \"later\"\n",
			want: `kilnd.toml:7: [[cache.registry]] export: unsupported export mode "later" (want "async": builds do not wait for their steps to be written, or "sync": they do)`,
		},
		{
			name: "unsupported shared cache compression",
			doc:  redis + "compression = \"lz4\"\n",
			want: `kilnd.toml:7: [[cache.registry]] compression: unsupported compression "lz4" (want "zstd", "gzip" or "uncompressed")`,
		},
		{
			name: "flush timeout that is not a duration",
			doc:  redis + "flush-timeout = \"soon\"\n",
			want: `kilnd.toml:7: [[cache.registry]] flush-timeout: bad duration "soon": want seconds (172800) or a duration ("48h", "90m", "7d")`,
		},
		{
			name: "redis address with the wrong scheme hides the password",
			doc:  "[[cache.blob]]\ntype = \"filesystem\"\npath = \"/c\"\n[[cache.registry]]\ntype = \"redis\"\nredis-addr = \"http://user:hunter2@cache:6379\"\n",
			want: `kilnd.toml:6: [[cache.registry]] redis-addr: bad redis address http://user:****@cache:6379: scheme must be redis:// or rediss://`,
		},
		{
			name: "missing redis address",
			doc:  "[[cache.blob]]\ntype = \"filesystem\"\npath = \"/c\"\n[[cache.registry]]\ntype = \"redis\"\n",
			want: `kilnd.toml:4: [[cache.registry]] redis-addr: missing: a redis cache needs redis-addr = "redis://host:6379"`,
		},
		{
			name: "a key of another type",
			doc:  "[[cache.blob]]\ntype = \"filesystem\"\npath = \"/c\"\nref = \"reg/app\"\n",
			want: `kilnd.toml:4: [[cache.blob]] ref: unknown key for type "filesystem" (valid: type, path)`,
		},
		{
			name: "relative blob directory",
			doc:  "[[cache.blob]]\ntype = \"filesystem\"\npath = \"cache\"\n",
			want: `kilnd.toml:3: [[cache.blob]] path: must be an absolute path, got "cache"`,
		},
		{
			name: "registry blob store with a scheme",
			doc:  "[[cache.blob]]\ntype = \"registry\"\nref = \"https://reg/app\"\n",
			want: `kilnd.toml:3: [[cache.blob]] ref: bad reference "https://reg/app": write it without a scheme (registry.example.com/app/cache)`,
		},
		{
			name: "index without a blob store",
			doc:  "[[cache.registry]]\ntype = \"redis\"\nredis-addr = \"redis://cache:6379\"\n",
			want: `kilnd.toml:1: [[cache.registry]]: needs a [[cache.blob]] to keep the layers its records name (type = "filesystem", path = a directory every daemon shares)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, _, err := config.Load(strings.NewReader(tt.doc), "kilnd.toml")
			if err != nil {
				t.Fatalf("config.Load: %v", err)
			}
			err = checkCaches(cfg)
			if tt.want == "" {
				if err != nil {
					t.Errorf("checkCaches: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errdefs.IsInvalidArgument(err) {
				t.Errorf("checkCaches = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// kilnd --validate checks the shared cache tables with the backends too,
// and prints the tables (secrets masked) when they are good.
func TestValidateCaches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc string
		code      int
		want      string // in stdout (code 0) or stderr
	}{
		{
			name: "good",
			doc:  "[[cache.blob]]\ntype = \"filesystem\"\npath = \"/srv/cache\"\n[[cache.registry]]\ntype = \"redis\"\nredis-addr = \"redis://u:s3cret@cache:6379\"\n",
			want: "redis-addr = 'redis://u:****@cache:6379'",
		},
		{
			name: "bad key",
			doc:  "[[cache.blob]]\ntype = \"filesystem\"\npath = \"/srv/cache\"\nsize = 3\n",
			code: 1,
			want: `kilnd: kilnd.toml:4: [[cache.blob]] size: unknown key for type "filesystem" (valid: type, path)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "kilnd.toml")
			if err := os.WriteFile(file, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr strings.Builder
			code := run([]string{"--config", file, "--validate"}, &stdout, &stderr)
			out := stdout.String()
			if tt.code != 0 {
				out = strings.ReplaceAll(stderr.String(), file, "kilnd.toml")
			}
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("kilnd --validate = %d\nstdout: %s\nstderr: %s\nwant %d and %q", code, stdout.String(), stderr.String(), tt.code, tt.want)
			}
		})
	}
}
