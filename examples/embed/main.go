// Command embed builds an image with Kiln's engine inside its own process:
// no kilnd, no gRPC. It is the Go way to extend Kiln (docs/extending.md):
// pick the frontends you want (Kiln's Dockerfile frontend, the gateway
// that runs frontend images, your own frontend.Frontend), open an engine
// on a state directory, and build a Dockerfile or a BuildKit LLB
// definition written with github.com/moby/buildkit/client/llb. It also
// registers a cache backend of its own by name (dircache.go: type=dir, a
// cache kept in a directory), which builds use as --cache-to and
// --cache-from values.
//
//	sudo go run ./examples/embed -root /tmp/kiln-embed -o out.tar examples/hello
//	sudo go run ./examples/embed -root /tmp/kiln-embed -llb busybox -o out.tar
//	sudo go run ./examples/embed -root /tmp/a -cache-to /tmp/cache examples/hello
//	sudo go run ./examples/embed -root /tmp/b -cache-from /tmp/cache examples/hello
//
// Steps run in containers through runc, so it needs root (or kilnd's
// rootless setup), as kilnd does.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"

	"github.com/moby/buildkit/client/llb"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/filesync"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile"
	"github.com/kiln-build/kiln/frontend/gateway"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
)

// options are the command line.
type options struct {
	root   string // the engine's state directory
	out    string // the result as a tar of its filesystem
	llbRef string // build LLB on this base image instead of a Dockerfile
	dir    string // the build context (and its Dockerfile)
	// cacheTo and cacheFrom are type=dir caches: the build exports
	// every step to cacheTo and reuses what cacheFrom holds.
	cacheTo, cacheFrom string
}

func main() {
	var o options
	flag.StringVar(&o.root, "root", "/tmp/kiln-embed", "state directory of the engine")
	flag.StringVar(&o.out, "o", "out.tar", "write the result's filesystem here as a tar")
	flag.StringVar(&o.llbRef, "llb", "", "build a small LLB definition on this base image instead of DIR/Dockerfile")
	flag.StringVar(&o.cacheTo, "cache-to", "", "export the build cache to this directory (--cache-to type=dir,dest=DIR,mode=max)")
	flag.StringVar(&o.cacheFrom, "cache-from", "", "use the build cache in this directory (--cache-from type=dir,src=DIR)")
	flag.Parse()
	o.dir = flag.Arg(0)
	if o.dir == "" {
		o.dir = "."
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// run opens an engine, builds, writes the result and closes the engine.
func run(ctx context.Context, o options, log io.Writer) error {
	e, err := engine.Open(ctx, engine.Options{
		Root: o.root,
		Frontends: map[string]frontend.Frontend{
			engine.FrontendDockerfile: dockerfile.New(),
			gateway.Name:              gateway.New(),
		},
		// The outputs this program uses, by their --output type.
		Exporters: map[string]exporter.Factory{exporter.TypeTar: exporter.TarFactory()},
		// The cache types this program uses, by their --cache-to and
		// --cache-from type: its own, defined in dircache.go.
		Caches: engine.CacheBackends{Types: remote.Backends{DirType: dirBackend()}},
	})
	if err != nil {
		return err
	}
	defer e.Close()

	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	req := engine.Request{
		Ref: "embed", ContextPath: dir, HasContext: true,
		Outputs: []engine.Output{{Type: "tar", Attrs: map[string]string{"dest": o.out}, Writer: func() (io.WriteCloser, error) {
			return os.Create(o.out)
		}}},
	}
	if o.cacheTo != "" {
		req.CacheTo = []engine.CacheExport{{Type: DirType, Attrs: map[string]string{"dest": o.cacheTo, "mode": "max"}}}
	}
	if o.cacheFrom != "" {
		req.CacheFrom = []engine.CacheImport{{Type: DirType, Attrs: map[string]string{"src": o.cacheFrom}}}
	}
	if o.llbRef != "" {
		// BuildKit's LLB, written with its Go client: Kiln converts it to
		// its own graph and caches every step as usual.
		st := llb.Image(o.llbRef).
			Run(llb.Shlex(`sh -c "echo built from LLB > /hello.txt"`)).Root().
			File(llb.Copy(llb.Local("context"), "/", "/src/", &llb.CopyInfo{CopyDirContentsOnly: true, CreateDestPath: true}))
		def, err := st.Marshal(ctx)
		if err != nil {
			return err
		}
		req.Definition = def.ToPB()
	} else {
		if req.Dockerfile, err = os.ReadFile(filepath.Join(dir, "Dockerfile")); err != nil {
			return err
		}
		req.DockerfileName = "Dockerfile"
	}
	// The engine writes progress from every step running at the time:
	// a progress.Writer must be safe for concurrent use, so the lines
	// this one prints go out one at a time.
	var mu sync.Mutex
	res, err := e.Build(ctx, req, &localSession{dirs: map[string]string{"context": dir}}, progress.WriterFunc(func(ev progress.Event) {
		if v := ev.Vertex; v != nil && v.Completed != nil {
			state := "DONE"
			if v.Cached {
				state = "CACHED"
				if v.CacheSource != "" && v.CacheSource != "local" {
					state += " (" + v.CacheSource + ")"
				}
			}
			if v.Error != "" {
				state = "ERROR " + v.Error
			}
			mu.Lock()
			fmt.Fprintf(log, "%s %s\n", state, v.Name)
			mu.Unlock()
		}
	}))
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "%d steps, %d cached, result in %s\n", res.Stats.Steps, res.Stats.Cached, o.out)
	return nil
}

// localSession answers the engine's requests to "the client" from this
// process: directories by name, no secrets, no ssh agents, no registry
// logins.
type localSession struct {
	dirs map[string]string
}

func (s *localSession) ID() string { return "embed" }

func (s *localSession) SyncDir(ctx context.Context, name string, opts session.SyncOptions, dest string) (session.SyncStats, error) {
	src, ok := s.dirs[name]
	if !ok {
		return session.SyncStats{}, errdefs.NotFoundf("local directory %q", name)
	}
	return filesync.Local(ctx, src, dest, opts)
}

func (s *localSession) Secret(_ context.Context, id string) ([]byte, error) {
	return nil, errdefs.NotFoundf("secret %s", id)
}

func (s *localSession) DialSSH(_ context.Context, id string) (net.Conn, error) {
	return nil, errdefs.NotFoundf("ssh agent %s", id)
}

func (s *localSession) Credentials(context.Context, string) (session.Credential, bool, error) {
	return session.Credential{}, false, nil
}
