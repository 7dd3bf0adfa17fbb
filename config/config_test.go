package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kiln-build/kiln/core/errdefs"
)

var rootEnv = Env{UID: 0, Getenv: func(string) string { return "" }}

func intp(i int) *int { return &i }

func loadFile(t *testing.T, name string) (*Config, []Warning) {
	t.Helper()
	cfg, warns, err := LoadFileFor(filepath.Join("testdata", name), rootEnv)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return cfg, warns
}

// defaultOCI is the [worker.oci] of default.toml, resolved for rootEnv.
func defaultOCI() OCIWorker {
	return OCIWorker{
		Enabled: true, CacheSize: 10_000_000_000, Platforms: []string{},
		CPUPressure: 50, MemoryPressure: 10, MemoryReserve: DiskSpace{Percent: 10},
		Binary: "auto", Snapshotter: "auto", NetworkMode: "auto", GC: true,
	}
}

// defaultFrontend is the [frontend] of default.toml.
func defaultFrontend() Frontend {
	return Frontend{Gateway: true, BuiltinSyntax: []string{"docker.io/docker/dockerfile"}, AllowedRepositories: []string{}}
}

func TestLoadDesignExample(t *testing.T) {
	t.Parallel()
	cfg, warns := loadFile(t, "design.toml")
	want := &Config{
		Version:              1,
		Root:                 "/var/lib/kiln",
		InsecureEntitlements: []string{},
		Log:                  Log{Format: "text", Level: "info"},
		GRPC:                 GRPC{Address: []string{"unix:///run/kiln/kilnd.sock", "tcp://0.0.0.0:1234"}},
		Worker:               Worker{OCI: defaultOCI()},
		Cache: Cache{
			Blob:     []CacheTable{{"type": "filesystem", "path": "/var/lib/kiln/cache"}},
			Registry: []CacheTable{{"type": "redis", "redis-addr": "redis://localhost:6379"}},
		},
		Rootless: Rootless{Enabled: true},
		Frontend: defaultFrontend(),
		Registry: map[string]RegistryHost{
			"docker.io":                {ConfigFile: "/home/user/.docker/config.json"},
			"my.private.registry:5000": {},
		},
		File: filepath.Join("testdata", "design.toml"),
	}
	if diff := cmp.Diff(want, cfg, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if len(warns) != 0 {
		t.Errorf("warnings = %v, want none", warns)
	}
}

func TestLoadBuildkitdStyle(t *testing.T) {
	t.Parallel()
	cfg, warns := loadFile(t, "buildkitd.toml")
	oci := defaultOCI()
	oci.Platforms = []string{"linux/amd64", "linux/arm64"}
	oci.CacheSize = 9000 * 1_000_000 // gckeepstorage counts MB
	oci.Binary = "crun"
	oci.MaxParallelism = 4
	oci.GCPolicy = []GCPolicy{
		{
			Filters:      []string{"type==source.local", "type==exec.cachemount", "type==source.git.checkout"},
			KeepDuration: Duration(48 * time.Hour),
			KeepBytes:    DiskSpace{Bytes: 512_000_000},
		},
		{
			All:           true,
			ReservedSpace: DiskSpace{Percent: 10},
			MaxUsedSpace:  DiskSpace{Bytes: 1_000_000_000},
			MinFreeSpace:  DiskSpace{Bytes: 20_000_000_000},
		},
	}
	want := &Config{
		Version:              1,
		Root:                 "/var/lib/buildkit",
		Debug:                true,
		InsecureEntitlements: []string{"network.host", "security.insecure"},
		Log:                  Log{Format: "json", Level: "debug"},
		GRPC: GRPC{
			Address: []string{"tcp://0.0.0.0:1234", "unix:///run/buildkit/buildkitd.sock"},
			UID:     intp(0),
			GID:     intp(1001),
			TLS:     TLS{Cert: "/etc/buildkit/tls.crt", Key: "/etc/buildkit/tls.key", CA: "/etc/buildkit/tlsca.crt"},
		},
		Worker:   Worker{OCI: oci},
		Frontend: Frontend{Gateway: false, BuiltinSyntax: []string{"docker.io/docker/dockerfile"}, AllowedRepositories: []string{"docker/dockerfile"}},
		Registry: map[string]RegistryHost{
			"docker.io": {
				Mirrors: []string{"yourmirror.local:5000", "core.harbor.domain/proxy.docker.io"},
				HTTP:    true,
				CA:      []string{"/etc/config/myca.pem"},
				KeyPair: []KeyPair{{Key: "/etc/config/key.pem", Cert: "/etc/config/cert.pem"}},
			},
			"yourmirror.local:5000": {Insecure: true},
		},
		File: filepath.Join("testdata", "buildkitd.toml"),
	}
	if diff := cmp.Diff(want, cfg, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if len(warns) != 0 {
		t.Errorf("warnings = %v, want none", warns)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want string // the whole error message
	}{
		{
			name: "unknown key",
			doc:  "# kilnd\n[worker.oci]\ncache-sise = \"1GB\"\n",
			want: `kilnd.toml:3: [worker.oci] cache-sise: unknown key`,
		},
		{
			name: "unknown table",
			doc:  "debug = true\n\n[workers.oci]\nenabled = true\n",
			want: `kilnd.toml:3: [workers.oci]: unknown table`,
		},
		{
			name: "buildkitd key kilnd does not take",
			doc:  "[worker.oci]\nrootless = true\n",
			want: `kilnd.toml:2: [worker.oci] rootless: unknown key (use [rootless] enabled instead)`,
		},
		{
			name: "wrong type",
			doc:  "[worker.oci]\nsnapshotter = \"native\"\nmax-parallelism = \"four\"\n",
			want: `kilnd.toml:3: [worker.oci] max-parallelism: wrong type: want an integer, got a string`,
		},
		{
			name: "pressure out of range",
			doc:  "[worker.oci]\ncpu-pressure = 150\n",
			want: `kilnd.toml:2: [worker.oci] cpu-pressure: 150 is out of range: want a percentage from 0 to 100 (0 turns the check off)`,
		},
		{
			name: "pressure as a string",
			doc:  "[worker.oci]\n\nmemory-pressure = \"10%\"\n",
			want: `kilnd.toml:3: [worker.oci] memory-pressure: wrong type: want a percentage from 0 to 100 (e.g. 50), got a string`,
		},
		{
			name: "bad memory reserve",
			doc:  "[worker.oci]\nmemory-reserve = \"lots\"\n",
			want: `kilnd.toml:2: [worker.oci] memory-reserve: bad value 'lots': want a size ("2GiB") or a percentage of the machine's memory ("10%")`,
		},
		{
			name: "wrong type for a list",
			doc:  "[grpc]\naddress = \"unix:///run/kiln/kilnd.sock\"\n",
			want: `kilnd.toml:2: [grpc] address: wrong type: want an array of strings (["a", "b"]), got a string`,
		},
		{
			name: "bad size",
			doc:  "[worker.oci]\ncache-size = \"10XB\"\n",
			want: `kilnd.toml:2: [worker.oci] cache-size: bad size "10XB": want bytes (10000000000) or a number with a unit ("512MB", "10GB", "10GiB")`,
		},
		{
			name: "size of the wrong type",
			doc:  "\n[worker.oci]\ncache-size = true\n",
			want: `kilnd.toml:3: [worker.oci] cache-size: wrong type: want bytes (10000000000) or a number with a unit ("512MB", "10GB", "10GiB"), got a boolean`,
		},
		{
			name: "bad address scheme",
			doc:  "[grpc]\naddress = [\n  \"unix:///run/kiln/kilnd.sock\",\n  \"http://0.0.0.0:1234\",\n]\n",
			want: `kilnd.toml:4: [grpc] address: bad address "http://0.0.0.0:1234": unsupported scheme "http://" (supported: unix://, tcp://)`,
		},
		{
			name: "uid-map that does not parse",
			doc:  "[rootless]\nenabled = true\nuid-map = \"0:100000\"\n",
			want: `kilnd.toml:3: [rootless] uid-map: bad range "0:100000": want container:host:size, e.g. 0:100000:65536`,
		},
		{
			name: "gcpolicy filter on another key",
			doc:  "[[worker.oci.gcpolicy]]\nfilters = [\"type==exec.cachemount\", \"id==abc\"]\n",
			want: `kilnd.toml:2: [[worker.oci.gcpolicy]] filters: filter "id==abc": only type==KIND filters are supported (KIND: regular, exec.cachemount, source.local, source.git.checkout, frontend, internal)`,
		},
		{
			name: "gcpolicy filter of an unknown type",
			doc:  "[[worker.oci.gcpolicy]]\nfilters = [\"type==cachemount\"]\n",
			want: `kilnd.toml:2: [[worker.oci.gcpolicy]] filters: filter "type==cachemount": unknown type "cachemount" (want regular, exec.cachemount, source.local, source.git.checkout, frontend, internal)`,
		},
		{
			name: "password without username",
			doc:  "[[registry.config]]\nhost = \"docker.io\"\n[[registry.config]]\nhost = \"my.registry:5000\"\npassword = \"hunter2\"\n",
			want: `kilnd.toml:5: [[registry.config]] password: username is not set: a password needs a username`,
		},
		{
			name: "password without username, buildkitd style",
			doc:  "[registry.\"my.registry:5000\"]\nhttp = true\npassword = \"hunter2\"\n",
			want: `kilnd.toml:3: [registry."my.registry:5000"] password: username is not set: a password needs a username`,
		},
		{
			name: "bad syntax pin",
			doc:  "[frontend]\ngateway = true\nsyntax = \"Not A Ref\"\n",
			want: `kilnd.toml:3: [frontend] syntax: "Not A Ref" is not an image reference (want e.g. registry.local:5000/dockerfile:1)`,
		},
		{
			name: "bad allowed repository",
			doc:  "[frontend]\nallowed-repositories = [\"ok/repo\", \"BAD REPO\"]\n",
			want: "kilnd.toml:2: [frontend] allowed-repositories: \"BAD REPO\" is not an image repository: repository can only contain the characters `abcdefghijklmnopqrstuvwxyz0123456789_-./`: BAD REPO",
		},
		{
			name: "gateway given twice",
			doc:  "[frontend]\ngateway = true\n[frontend.\"gateway.v0\"]\nenabled = false\n",
			want: `kilnd.toml:4: [frontend."gateway.v0"] enabled: gateway is set too; keep only gateway`,
		},
		{
			name: "unknown runtime",
			doc:  "[worker.oci]\nbinary = \"youki\"\n",
			want: `kilnd.toml:2: [worker.oci] binary: unsupported runtime "youki" (supported: auto, runc, crun, or an absolute path to one)`,
		},
		{
			name: "bad platform",
			doc:  "[worker.oci]\nplatforms = [\"linux/arm64\", \"lunix/amd64\"]\n",
			want: `kilnd.toml:2: [worker.oci] platforms: unsupported platform "lunix/amd64": kiln builds linux images only`,
		},
		{
			name: "bad gc duration",
			doc:  "[[worker.oci.gcpolicy]]\nall = true\n[[worker.oci.gcpolicy]]\nkeepDuration = \"forever\"\n",
			want: `kilnd.toml:4: [[worker.oci.gcpolicy]] keepDuration: bad duration "forever": want seconds (172800) or a duration ("48h", "90m", "7d")`,
		},
		{
			name: "unknown key in a registry host",
			doc:  "[registry.\"docker.io\"]\nmirror = [\"mirror.local:5000\"]\n",
			want: `kilnd.toml:2: [registry."docker.io"] mirror: unknown key`,
		},
		{
			name: "registry key set twice to different values",
			doc:  "[registry.\"docker.io\"]\nmirrors = [\"m:5000\"]\nhttp = true\n[[registry.config]]\nhost = \"docker.io\"\nmirrors = [\"other:5000\"]\n",
			want: `kilnd.toml:6: [[registry.config]] mirrors: registry "docker.io": mirrors is already set to ['m:5000'] at line 2; set it once`,
		},
		{
			name: "registry key set twice in [[registry.config]]",
			doc:  "[[registry.config]]\nhost = \"r:5000\"\ninsecure = true\n[[registry.config]]\nhost = \"r:5000\"\ninsecure = false\n",
			want: `kilnd.toml:6: [[registry.config]] insecure: registry "r:5000": insecure is already set to true at line 3; set it once`,
		},
		{
			name: "tls cert without key",
			doc:  "[grpc]\naddress = [\"tcp://0.0.0.0:1234\"]\n[grpc.tls]\ncert = \"/etc/kiln/cert.pem\"\n",
			want: `kilnd.toml:4: [grpc.tls] cert: key is not set: a TLS listener needs both cert and key`,
		},
		{
			name: "containerd worker",
			doc:  "[worker.containerd]\nenabled = true\n",
			want: `kilnd.toml:2: [worker.containerd] enabled: kilnd has no containerd worker; set enabled = false or remove [worker.containerd]`,
		},
		{
			name: "syntax error",
			doc:  "debug = true\nroot = \n",
			want: `kilnd.toml:2: syntax error: unexpected character U+000A at start of value`,
		},
		{
			name: "several problems, in line order",
			doc:  "[log]\nformat = \"xml\"\n[worker.oci]\nsnapshotter = \"zfs\"\n",
			want: "kilnd.toml:2: [log] format: unsupported log format \"xml\" (supported: text, json)\n" +
				`kilnd.toml:4: [worker.oci] snapshotter: unsupported snapshotter "zfs" (supported: auto, overlayfs, native)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, _, err := LoadFor(strings.NewReader(tt.doc), "kilnd.toml", rootEnv)
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want error %q", cfg, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got: %s\nwant: %s", got, tt.want)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %v is not in the invalid-argument class", err)
			}
			var se *errdefs.SourceError
			if !errors.As(err, &se) || se.File != "kilnd.toml" || se.Range.Start == 0 {
				t.Errorf("error %v does not carry a SourceError with file and line", err)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	doc := "[[registry.config]]\nhost = \"my.registry:5000\"\nusername = \"ci\"\npassword = \"hunter2\"\n" +
		"[[cache.registry]]\ntype = \"redis\"\nredis-addr = \"redis://:s3cret@cache:6379/2\"\n"
	cfg, warns, err := LoadFor(strings.NewReader(doc), "kilnd.toml", rootEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registry["my.registry:5000"].Password != "hunter2" {
		t.Errorf("password not loaded: %+v", cfg.Registry)
	}
	var got []string
	for _, w := range warns {
		got = append(got, w.String())
	}
	want := []string{
		"kilnd.toml:4: [[registry.config]] password: plaintext password for my.registry:5000 in the config file; anyone who can read the file can use it (prefer config-file or a credential helper)",
		"kilnd.toml:7: [[cache.registry]] redis-addr: plaintext redis password in the config file; anyone who can read the file can use it",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	for _, w := range got {
		if strings.Contains(w, "hunter2") || strings.Contains(w, "s3cret") {
			t.Errorf("warning leaks a secret: %s", w)
		}
	}
}

func TestDebugListener(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc string
		addr      string
		debug     bool
		warn      string
		err       string
	}{
		{name: "table", doc: "[debug]\naddress = \"127.0.0.1:6060\"\n", addr: "127.0.0.1:6060"},
		{name: "bool still means logging", doc: "debug = true\n", debug: true},
		{name: "buildkitd.toml spelling", doc: "[grpc]\ndebugAddress = \"localhost:6060\"\n", addr: "localhost:6060"},
		{name: "open to the network", doc: "[debug]\naddress = \"0.0.0.0:6060\"\n", addr: "0.0.0.0:6060",
			warn: "kilnd.toml:2: [debug] address: the debug listener serves /debug/pprof (memory, goroutines, command line) to anyone who can reach 0.0.0.0:6060; prefer 127.0.0.1"},
		{name: "unknown key", doc: "[debug]\nport = 6060\n", err: "kilnd.toml:2: [debug] port: unknown key (the [debug] table takes address)"},
		{name: "no port", doc: "\n[debug]\naddress = \"localhost\"\n", err: `kilnd.toml:3: [debug] address: bad address "localhost": want host:port, e.g. "127.0.0.1:6060"`},
		{name: "both spellings", doc: "[debug]\naddress = \"127.0.0.1:1\"\n[grpc]\ndebugAddress = \"127.0.0.1:2\"\n", err: "kilnd.toml:4: [grpc] debugAddress: [debug] address is set too; keep only [debug] address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, warns, err := LoadFor(strings.NewReader(tt.doc), "kilnd.toml", rootEnv)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error:\n got: %v\nwant: %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.DebugAddress != tt.addr || cfg.Debug != tt.debug {
				t.Errorf("address %q, debug %v; want %q, %v", cfg.DebugAddress, cfg.Debug, tt.addr, tt.debug)
			}
			var got string
			for _, w := range warns {
				got += w.String()
			}
			if got != tt.warn {
				t.Errorf("warnings %q, want %q", got, tt.warn)
			}
		})
	}
}

func TestWriteTOMLMasksSecretsAndRoundTrips(t *testing.T) {
	t.Parallel()
	doc := "[[registry.config]]\nhost = \"my.registry:5000\"\nusername = \"ci\"\npassword = \"hunter2\"\n" +
		"[[cache.registry]]\ntype = \"redis\"\nredis-addr = \"redis://user:s3cret@cache:6379/2\"\nttl = \"168h\"\nexport = \"sync\"\nflush-timeout = \"2m\"\ncompression = \"gzip\"\n" +
		"[worker.oci]\ncache-size = \"512MiB\"\nmemory-reserve = \"2GiB\"\ncpu-pressure = 75.5\n[[worker.oci.gcpolicy]]\nkeepDuration = 3600\nreservedSpace = \"5%\"\n" +
		"[debug]\naddress = \"127.0.0.1:6060\"\n"
	cfg, _, err := LoadFor(strings.NewReader(doc), "kilnd.toml", rootEnv)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := cfg.WriteTOML(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, secret := range []string{"hunter2", "s3cret"} {
		if strings.Contains(out, secret) {
			t.Errorf("output contains %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "redis://user:****@cache:6379/2") {
		t.Errorf("output does not show the masked redis address:\n%s", out)
	}
	// The printed configuration loads again to the same values (with the
	// masks in place of the secrets).
	again, _, err := LoadFor(strings.NewReader(out), "out.toml", rootEnv)
	if err != nil {
		t.Fatalf("printed configuration does not load: %v\n%s", err, out)
	}
	if diff := cmp.Diff(cfg.Redacted(), again, cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if cfg.Registry["my.registry:5000"].Password != "hunter2" {
		t.Error("Redacted changed the original configuration")
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	home := map[string]string{"HOME": "/home/ann", "XDG_RUNTIME_DIR": "/run/user/1000"}
	tests := []struct {
		name                   string
		env                    Env
		root, addr, configPath string
	}{
		{"root", rootEnv, "/var/lib/kiln", "unix:///run/kiln/kilnd.sock", "/etc/kiln/kilnd.toml"},
		{
			"rootless",
			Env{UID: 1000, Getenv: func(k string) string { return home[k] }},
			"/home/ann/.local/share/kiln", "unix:///run/user/1000/kiln/kilnd.sock", "/home/ann/.config/kiln/kilnd.toml",
		},
		{
			"rootless with XDG dirs",
			Env{UID: 1000, Getenv: func(k string) string {
				return map[string]string{"XDG_DATA_HOME": "/d", "XDG_CONFIG_HOME": "/c", "XDG_RUNTIME_DIR": "/r"}[k]
			}},
			"/d/kiln", "unix:///r/kiln/kilnd.sock", "/c/kiln/kilnd.toml",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultFor(tt.env)
			if err := cfg.Validate(); err != nil {
				t.Fatalf("default configuration is invalid: %v", err)
			}
			got := []string{cfg.Root, strings.Join(cfg.GRPC.Address, ","), tt.env.DefaultPath()}
			if diff := cmp.Diff([]string{tt.root, tt.addr, tt.configPath}, got); diff != "" {
				t.Errorf("root, address, config path (-want +got):\n%s", diff)
			}
			if cfg.Worker.OCI.MaxParallelism != 0 {
				t.Errorf("max-parallelism = %d, want 0 (no cap: steps start by measured pressure)", cfg.Worker.OCI.MaxParallelism)
			}
			if cfg.File != "" {
				t.Errorf("File = %q, want empty for built-in defaults", cfg.File)
			}
		})
	}
	// An empty file is the defaults.
	empty, _, err := LoadFor(strings.NewReader(""), "empty.toml", rootEnv)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultFor(rootEnv), empty, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("empty file differs from defaults (-want +got):\n%s", diff)
	}
}

// TestDefaultTOMLDocumentsEveryKey keeps default.toml complete: each key of
// the schema appears there, set or in a comment.
func TestDefaultTOMLDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	text := string(defaultTOML)
	var walk func(rt reflect.Type)
	seen := map[reflect.Type]bool{}
	walk = func(rt reflect.Type) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || seen[rt] || rt.PkgPath() != reflect.TypeOf(Config{}).PkgPath() {
			return
		}
		seen[rt] = true
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !strings.Contains(text, name) {
				t.Errorf("default.toml does not mention %s (field %s.%s)", name, rt.Name(), f.Name)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeOf(fileConfig{}))
}

func TestLoadFileMissing(t *testing.T) {
	t.Parallel()
	_, _, err := LoadFileFor(filepath.Join(t.TempDir(), "nope.toml"), rootEnv)
	if !errdefs.IsNotFound(err) {
		t.Fatalf("err = %v, want not-found class", err)
	}
	if !strings.Contains(err.Error(), "nope.toml does not exist") {
		t.Errorf("err = %v, want it to name the file", err)
	}
}

func TestLoadFileSetsFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "kilnd.toml")
	if err := os.WriteFile(p, []byte("debug = true\n[grpc]\nuid = 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := LoadFileFor(p, rootEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != p || !cfg.Debug || cfg.Log.Level != "debug" || *cfg.GRPC.UID != 5 || cfg.GRPC.GID != nil {
		t.Errorf("got File=%q Debug=%v Level=%q UID=%v GID=%v", cfg.File, cfg.Debug, cfg.Log.Level, cfg.GRPC.UID, cfg.GRPC.GID)
	}
	// Errors name the path as given.
	if err := os.WriteFile(p, []byte("bogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadFileFor(p, rootEnv)
	if want := p + ":1: bogus: unknown key"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestValidateProgrammatic(t *testing.T) {
	t.Parallel()
	cfg := DefaultFor(rootEnv)
	cfg.GRPC.Address = []string{"tcp://127.0.0.1:1234", "tcp://127.0.0.1:1234"}
	cfg.Worker.OCI.MaxParallelism = -1
	err := cfg.Validate()
	want := `[grpc] address: "tcp://127.0.0.1:1234" is listed twice (also address[0])` + "\n" +
		`[worker.oci] max-parallelism: must not be negative, got -1`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want:\n%s", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Key != "[grpc] address" {
		t.Errorf("errors.As(*FieldError) = %+v", fe)
	}
}
