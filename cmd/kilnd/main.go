// Command kilnd is the Kiln build daemon. It loads kilnd.toml, locks its
// root directory, and serves the API on every configured address until
// SIGTERM or SIGINT.
//
//	kilnd [--config FILE] [--addr ADDR]... [--root DIR] [--debug]
//	kilnd --config FILE --validate
//	kilnd --print-default-config > /etc/kiln/kilnd.toml
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	// BuildKit's protobuf codec: its messages (the session's tunnelled
	// bytes, fsutil's packets, Status) marshal through their generated
	// vtproto code instead of reflection, as in buildkitd.
	_ "github.com/moby/buildkit/util/grpcutil/encoding/proto"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/daemon"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/engine/disk"
)

// version and revision are set at link time:
// -ldflags "-X main.version=v0.1.0 -X main.revision=abc1234". Without a
// revision, the VCS revision Go stamps into the binary is used.
var (
	version  = "dev"
	revision = ""
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	config   string
	validate bool
	addrs    []string
	root     string
	debug    bool
	logFmt   string
	printDef bool
}

func run(args []string, stdout, stderr io.Writer) int {
	var f flags
	cmd := &cobra.Command{
		Use:           "kilnd",
		Short:         "kilnd is the Kiln build daemon",
		Version:       version,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd, f, stdout, stderr)
		},
	}
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "configuration file (default "+config.HostEnv().DefaultPath()+")")
	fl.BoolVar(&f.validate, "validate", false, "print the effective configuration (secrets masked) and exit")
	fl.StringArrayVar(&f.addrs, "addr", nil, "listen address, unix:///path or tcp://host:port (repeatable; replaces [grpc] address)")
	fl.StringVar(&f.root, "root", "", "state directory (default "+config.HostEnv().DefaultRoot()+")")
	fl.BoolVar(&f.debug, "debug", false, "debug logging")
	fl.StringVar(&f.logFmt, "log-format", "", `log format, "text" or "json" (replaces [log] format)`)
	fl.BoolVar(&f.printDef, "print-default-config", false, "print the built-in configuration, every key documented, and exit")
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintf(stderr, "kilnd: %s\n", err)
		return 1
	}
	return 0
}

// loadConfig reads --config, or the default file when it exists, and
// applies the flags.
func loadConfig(f flags) (*config.Config, []config.Warning, error) {
	env := config.HostEnv()
	var (
		cfg   *config.Config
		warns []config.Warning
		err   error
	)
	if f.config != "" {
		cfg, warns, err = config.LoadFileFor(f.config, env)
	} else {
		cfg, warns, err = config.LoadFileFor(env.DefaultPath(), env)
		if errdefs.IsNotFound(err) {
			cfg, warns, err = config.DefaultFor(env), nil, nil
		}
	}
	if err != nil {
		return nil, warns, err
	}
	if len(f.addrs) > 0 {
		cfg.GRPC.Address = f.addrs
	}
	if f.root != "" {
		cfg.Root = f.root
	}
	if f.debug {
		cfg.Debug = true
		cfg.Log.Level = "debug"
	}
	if f.logFmt != "" {
		cfg.Log.Format = f.logFmt
	}
	if err := cfg.Validate(); err != nil {
		return nil, warns, fmt.Errorf("flags: %w", flagErrors(err))
	}
	return cfg, warns, nil
}

// checkSupported refuses what this kilnd cannot honour instead of running
// without it. [rootless] enabled runs RUN steps in a user namespace under
// a root kilnd; kilnd itself without root cannot unpack image layers or
// run steps, so it does not start that way.
func checkSupported(euid int) error {
	if euid != 0 {
		return errdefs.WithClass(errdefs.ErrUnimplemented, errors.New(
			"kilnd must run as root (sudo kilnd): without root it cannot unpack image layers or run steps; [rootless] enabled = true runs the steps themselves as an unprivileged user"))
	}
	return nil
}

// flagErrors names flags instead of file keys in validation errors.
func flagErrors(err error) error {
	r := strings.NewReplacer("[grpc] address", "--addr", "root:", "--root:", "[log] format", "--log-format")
	return errors.New(r.Replace(err.Error()))
}

func serve(cmd *cobra.Command, f flags, stdout, stderr io.Writer) error {
	if f.printDef {
		_, err := stdout.Write(config.DefaultTOML())
		return err
	}
	cfg, warns, err := loadConfig(f)
	for _, w := range warns {
		fmt.Fprintf(stderr, "kilnd: warning: %s\n", w)
	}
	if err != nil {
		return err
	}
	if err := checkCaches(cfg); err != nil {
		return err
	}
	euid := os.Geteuid()
	if f.validate {
		euid = 0 // checking a file needs no root
	}
	if err := checkSupported(euid); err != nil {
		return err
	}
	if f.validate {
		src := cfg.File
		if src == "" {
			src = "built-in defaults"
		}
		fmt.Fprintf(stdout, "# kilnd configuration from %s (secrets masked)\n", src)
		return cfg.WriteTOML(stdout)
	}

	log := daemon.NewLogger(stderr, cfg.Log)
	// Libraries that log through slog's default (go-redis, via
	// cache/remote/redis) follow kilnd's format and level.
	slog.SetDefault(log)
	lock, err := daemon.LockRoot(cfg.Root)
	if err != nil {
		return err
	}
	defer lock.Release()

	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	size, free := disk.Space(cfg.Root)
	policies := gcPolicies(cfg, size, free)
	eng, err := openEngine(ctx, cfg, log, engine.GCOptions{CacheSize: gcCacheSize(cfg), Policies: policies})
	if err != nil {
		return fmt.Errorf("open root %s: %w", cfg.Root, err)
	}
	defer func() {
		if err := eng.Close(); err != nil {
			log.Warn("close engine", slog.Any("error", err))
		}
	}()
	if cfg.DebugAddress != "" {
		if err := startDebug(ctx, cfg.DebugAddress, eng, log); err != nil {
			return err
		}
	}
	worker, err := daemon.DescribeWorker(cfg, eng.Snapshotter())
	if err != nil {
		return err
	}
	bk, err := newBuildKit(cfg, eng, worker, policies, log)
	if err != nil {
		return err
	}
	srv, err := daemon.New(ctx, cfg,
		daemon.WithAPIs(bk.Register),
		daemon.WithWorkerInfo(worker),
		daemon.WithLogger(log),
		daemon.WithVersion(version, revision),
		daemon.WithServices(daemon.EngineServices(eng)),
	)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	log.Debug("configuration", slog.String("file", cfg.File), slog.Any("addresses", srv.Addrs()))
	return srv.Serve(ctx)
}
