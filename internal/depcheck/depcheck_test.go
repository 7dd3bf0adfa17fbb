package depcheck

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/kiln-build/kiln/"

// imports lists every package of the module with its imports (module
// packages without the module prefix; others as they are).
func imports(t *testing.T) map[string][]string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		// go test sets GOROOT for the test binary; /usr/local/go is where
		// the project's machines keep Go.
		goBin = "/usr/local/go/bin/go"
		if r := os.Getenv("GOROOT"); r != "" {
			goBin = filepath.Join(r, "bin", "go")
		}
	}
	cmd := exec.Command(goBin, "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...")
	cmd.Dir = "../.."
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string][]string{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		name := strings.TrimPrefix(f[0], module)
		var imps []string
		for _, imp := range f[1:] {
			imps = append(imps, strings.TrimPrefix(imp, module))
		}
		pkgs[name] = imps
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

var knownTop = map[string]bool{
	"api": true, "cache": true, "client": true, "config": true, "content": true, "daemon": true, "engine": true,
	"executor": true, "exporter": true, "filesync": true, "frontend": true, "gc": true, "graph": true,
	"imagestore": true, "ops": true, "progress": true, "registry": true, "session": true, "snapshot": true,
	"solver": true, "worker": true,
}

func under(pkg, prefix string) bool { return pkg == prefix || strings.HasPrefix(pkg, prefix+"/") }

func TestImportDirection(t *testing.T) {
	pkgs := imports(t)
	// Packages that may import only the listed Kiln packages.
	allowed := map[string][]string{
		"core/errdefs": nil, "core/labels": nil, "graph": nil, "progress": nil, "session": nil,
		"ops":                        {"graph", "session", "core/errdefs"},
		"frontend":                   {"graph", "core/errdefs"},
		"frontend/dockerfile/shell":  nil,
		"frontend/dockerfile/parser": {"core/errdefs", "frontend/dockerfile/shell"},
		"cache":                      {"ops", "progress", "core/errdefs"},
		"config":                     {"core/errdefs"},
		"registry":                   {"core/errdefs"},
		"solver":                     {"cache", "graph", "ops", "progress", "session", "core/errdefs"},
		"executor":                   {"core/errdefs", "executor/user"},
		// BuildKit's API is a second edge over the engine, beside daemon's
		// own; it knows neither Kiln's wire types nor the daemon.
		"daemon/buildkit":             {"cache/remote", "config", "core/errdefs", "engine", "engine/disk", "engine/history", "exporter", "frontend", "progress", "session"},
		"frontend/dockerfile/convert": {"core/errdefs", "frontend", "frontend/dockerfile/instructions", "frontend/dockerfile/parser", "frontend/dockerfile/shell", "graph"},
	}
	for pkg, ok := range allowed {
		imps, found := pkgs[pkg]
		if !found {
			t.Errorf("package %s does not exist any more: update this test", pkg)
			continue
		}
		for _, imp := range imps {
			if !knownTop[strings.SplitN(imp, "/", 2)[0]] && !strings.HasPrefix(imp, "core/") && !strings.HasPrefix(imp, "internal/") {
				continue // not a Kiln package
			}
			if !contains(ok, imp) {
				t.Errorf("%s imports %s; it may import only %v", pkg, imp, ok)
			}
		}
	}

	// The edge: only these know gRPC, and nothing below the engine
	// imports the daemon, the client or the engine.
	edge := []string{"api", "daemon", "client", "cmd", "e2e", "hack", "internal/testutil"}
	top := []string{"daemon", "client", "engine", "cmd"}
	for pkg, imps := range pkgs {
		atEdge := false
		for _, e := range edge {
			if under(pkg, e) {
				atEdge = true
			}
		}
		for _, imp := range imps {
			if strings.HasPrefix(imp, "google.golang.org/grpc") && !atEdge {
				t.Errorf("%s imports %s: gRPC belongs to api, daemon and client", pkg, imp)
			}
			if pkg == "engine" || atEdge {
				continue
			}
			for _, tp := range top {
				if under(imp, tp) {
					t.Errorf("%s imports %s, which is above it", pkg, imp)
				}
			}
		}
	}
	// BuildKit's known tangles, kept out.
	forbidden := map[string][]string{
		"cache":    {"solver", "client", "daemon"},
		"snapshot": {"executor", "solver", "cache"},
		"content":  {"snapshot", "solver", "cache"},
	}
	for pkg, bad := range forbidden {
		for p, imps := range pkgs {
			if !under(p, pkg) || (pkg == "cache" && under(p, "cache/remote")) {
				continue
			}
			for _, imp := range imps {
				for _, b := range bad {
					if under(imp, b) {
						t.Errorf("%s imports %s", p, imp)
					}
				}
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
