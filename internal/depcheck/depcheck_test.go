package depcheck

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

func under(pkg, prefix string) bool { return pkg == prefix || strings.HasPrefix(pkg, prefix+"/") }

// kiln reports whether an import (module prefix trimmed) is a Kiln
// package.
func kiln(pkgs map[string][]string, imp string) bool {
	_, ok := pkgs[imp]
	return ok
}

func TestEveryPackageHasALayer(t *testing.T) {
	pkgs := imports(t)
	table := Table()
	for pkg := range pkgs {
		if _, ok := table[pkg]; !ok {
			t.Errorf("package %s has no row in depcheck's Table: place it in a layer (internal/depcheck/layers.go)", pkg)
		}
	}
	for pkg := range table {
		if _, ok := pkgs[pkg]; !ok {
			t.Errorf("depcheck's Table places %s, which does not exist any more: remove its row", pkg)
		}
	}
}

func TestImportsPointDown(t *testing.T) {
	pkgs := imports(t)
	table := Table()
	for pkg, imps := range pkgs {
		r, ok := table[pkg]
		if !ok {
			continue // TestEveryPackageHasALayer says so
		}
		for _, imp := range imps {
			if !kiln(pkgs, imp) {
				continue
			}
			if ir, ok := table[imp]; ok && ir.Layer >= r.Layer {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports point to lower layers only", pkg, r.Layer, imp, ir.Layer)
			}
			if r.May != nil && !slices.Contains(r.May, imp) {
				t.Errorf("%s imports %s; it may import only %v", pkg, imp, r.May)
			}
		}
	}
}

func TestGRPCAtTheEdge(t *testing.T) {
	pkgs := imports(t)
	// Only these know gRPC: the wire contract, the two sides of it, the
	// gateway (it serves BuildKit's LLBBridge to a frontend container over
	// the container's stdio), and the binaries and tests around them.
	edge := []string{"api", "daemon", "client", "frontend/gateway", "cmd", "e2e", "hack", "examples"}
	for pkg, imps := range pkgs {
		atEdge := slices.ContainsFunc(edge, func(e string) bool { return under(pkg, e) })
		for _, imp := range imps {
			if strings.HasPrefix(imp, "google.golang.org/grpc") && !atEdge {
				t.Errorf("%s imports %s: gRPC belongs to api, daemon and client", pkg, imp)
			}
		}
	}
}

func TestBuildKitTanglesStayOut(t *testing.T) {
	pkgs := imports(t)
	forbidden := map[string][]string{
		"cache":    {"solver", "client", "daemon"},
		"snapshot": {"executor", "solver", "cache"},
		"content":  {"snapshot", "solver", "cache"},
		"exporter": {"frontend", "solver", "worker", "engine"},
		"frontend": {"content", "snapshot", "registry", "solver"},
	}
	for pkg, bad := range forbidden {
		for p, imps := range pkgs {
			if !under(p, pkg) {
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
