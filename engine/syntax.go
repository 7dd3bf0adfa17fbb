package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/registry"
)

// Frontend names the engine knows beyond those in Config.Frontends.
const (
	// FrontendDockerfile is the built-in Dockerfile frontend (the default;
	// BuildKit's name "dockerfile.v0" means it too).
	FrontendDockerfile = "dockerfile"
	// FrontendGateway runs a frontend image (BuildKit's "gateway.v0"):
	// `# syntax=IMAGE`, --build-arg BUILDKIT_SYNTAX=IMAGE, or the "source"
	// frontend option.
	FrontendGateway = "gateway.v0"
)

// SyntaxPolicy says what a Dockerfile's `# syntax=IMAGE` line and the
// BUILDKIT_SYNTAX build arg do (kilnd.toml [frontend]). The zero value
// runs the image named, as BuildKit does.
type SyntaxPolicy struct {
	// Disabled refuses external frontends: a build that names one fails
	// with the line that names it (locked-down daemons).
	Disabled bool
	// Pin, if set, is the frontend image run instead of whatever a build
	// names (a vetted copy in a local registry).
	Pin string
	// Builtin lists image repositories ("docker.io/docker/dockerfile")
	// whose syntax the built-in Dockerfile frontend implements: a build
	// naming one of them uses it, and nothing is pulled.
	Builtin []string
	// AllowedRepositories, if set, are the only repositories frontend
	// images may come from (BuildKit's allowedRepositories).
	AllowedRepositories []string
}

// normalizeSyntax checks a policy and writes its Builtin repositories in
// their normalized form.
func normalizeSyntax(p SyntaxPolicy) (SyntaxPolicy, error) {
	builtin := make([]string, len(p.Builtin))
	for i, b := range p.Builtin {
		repo, err := repository(b)
		if err != nil {
			return p, fmt.Errorf("engine: builtin syntax %q: %w", b, err)
		}
		builtin[i] = repo
	}
	p.Builtin = builtin
	return p, nil
}

// syntaxUse is an external frontend a Dockerfile build asked for.
type syntaxUse struct {
	image   string // the frontend image to run
	cmdline string // the syntax value (image and arguments)
	// where it was asked for, for messages: a Dockerfile line or the
	// build arg.
	file string
	line int
	what string // "# syntax=..." or "--build-arg BUILDKIT_SYNTAX=..."
}

// errorf returns an error about the syntax image, placed at the line that
// named it when there is one.
func (s *syntaxUse) errorf(class error, format string, args ...any) error {
	err := errdefs.WithClass(class, fmt.Errorf("%s: %s", s.what, fmt.Sprintf(format, args...)))
	if s.line > 0 {
		return &errdefs.SourceError{File: s.file, Range: errdefs.Range{Start: s.line, End: s.line}, Err: err}
	}
	return err
}

// wrap places err at the line that named the frontend image.
func (s *syntaxUse) wrap(err error) error {
	err = fmt.Errorf("%s: %w", s.what, err)
	if s.line > 0 {
		return &errdefs.SourceError{File: s.file, Range: errdefs.Range{Start: s.line, End: s.line}, Err: err}
	}
	return err
}

// chooseFrontend picks the frontend of req: the one it names, or, for a
// Dockerfile build that names a frontend image, the gateway running that
// image (unless the policy says otherwise). It returns the frontend's name
// and options.
func (e *Engine) chooseFrontend(req Request, pw progress.Writer) (string, map[string]string, *syntaxUse, error) {
	opts := map[string]string{}
	for k, v := range req.FrontendOpts {
		opts[k] = v
	}
	name := req.Frontend
	switch name {
	case "", FrontendDockerfile, "dockerfile.v0":
		name = FrontendDockerfile
	case FrontendGateway:
		if e.syntax.Disabled {
			return "", nil, nil, errdefs.WithClass(errdefs.ErrPermissionDenied, fmt.Errorf("frontend %s: this kilnd does not run frontend images ([frontend] gateway = false in kilnd.toml)", name))
		}
		if err := e.checkFrontendImage(opts["source"]); err != nil {
			return "", nil, nil, err
		}
		return name, opts, nil, nil
	default:
		return name, opts, nil, nil
	}
	if _, forwarded := opts["cmdline"]; forwarded {
		return name, opts, nil, nil
	}
	use := detectSyntax(req)
	if use == nil {
		return name, opts, nil, nil
	}
	if e.syntax.Pin != "" {
		pw.Write(progress.Event{Warning: &progress.Warning{Message: fmt.Sprintf("%s: kilnd runs the pinned frontend %s instead", use.what, e.syntax.Pin)}})
		use.image = e.syntax.Pin
		if _, args, ok := strings.Cut(use.cmdline, " "); ok {
			use.cmdline = use.image + " " + args
		} else {
			use.cmdline = use.image
		}
	} else if repo, err := repository(use.image); err != nil {
		return "", nil, nil, use.errorf(errdefs.ErrInvalidArgument, "%v", err)
	} else if contains(e.syntax.Builtin, repo) {
		return name, opts, nil, nil // the built-in frontend implements it
	}
	if e.syntax.Disabled {
		return "", nil, nil, use.errorf(errdefs.ErrPermissionDenied, "this kilnd does not run frontend images ([frontend] gateway = false in kilnd.toml); remove the line or use a built-in syntax")
	}
	if err := e.checkFrontendImage(use.image); err != nil {
		return "", nil, nil, use.wrap(err)
	}
	if _, ok := e.frontends[FrontendGateway]; !ok {
		return "", nil, nil, use.errorf(errdefs.ErrUnimplemented, "this kilnd has no gateway frontend to run %s", use.image)
	}
	opts["source"], opts["cmdline"] = use.image, use.cmdline
	return FrontendGateway, opts, use, nil
}

// checkFrontendImage applies AllowedRepositories to a frontend image.
func (e *Engine) checkFrontendImage(image string) error {
	if image == "" {
		return errdefs.Invalidf("frontend %s needs the \"source\" option: the frontend image to run", FrontendGateway)
	}
	allowed := e.syntax.AllowedRepositories
	if len(allowed) == 0 {
		return nil
	}
	repo, err := repository(image)
	if err != nil {
		return err
	}
	for _, a := range allowed {
		if r, err := repository(a); err == nil && r == repo {
			return nil
		}
	}
	return errdefs.WithClass(errdefs.ErrPermissionDenied, fmt.Errorf("frontend image %s is not from an allowed repository ([frontend] allowed-repositories in kilnd.toml: %s)", image, strings.Join(allowed, ", ")))
}

// repository returns the normalized repository of an image reference:
// "docker/dockerfile:1" → "docker.io/docker/dockerfile".
func repository(image string) (string, error) {
	ref, err := registry.ParseReference(image)
	if err != nil {
		return "", err
	}
	repo := ref.Context()
	return registry.HostKey(repo.RegistryStr()) + "/" + repo.RepositoryStr(), nil
}

// detectSyntax finds the frontend image a Dockerfile build names: the
// BUILDKIT_SYNTAX build arg, else a `# syntax=` line among the comment
// lines at the top of the Dockerfile (BuildKit's rule; "//" comments
// count too).
func detectSyntax(req Request) *syntaxUse {
	file := req.DockerfileName
	if file == "" {
		file = "Dockerfile"
	}
	if v := strings.TrimSpace(req.BuildArgs["BUILDKIT_SYNTAX"]); v != "" {
		img, _, _ := strings.Cut(v, " ")
		return &syntaxUse{image: img, cmdline: v, file: file, what: "--build-arg BUILDKIT_SYNTAX=" + v}
	}
	for i, line := range strings.Split(string(req.Dockerfile), "\n") {
		l := strings.TrimSpace(line)
		if l == "" {
			continue
		}
		var rest string
		switch {
		case strings.HasPrefix(l, "#"):
			rest = l[1:]
		case strings.HasPrefix(l, "//"):
			rest = l[2:]
		default:
			return nil
		}
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			continue
		}
		if strings.ToLower(strings.TrimSpace(k)) != "syntax" {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "" {
			return nil
		}
		img, _, _ := strings.Cut(v, " ")
		return &syntaxUse{image: img, cmdline: v, file: file, line: i + 1, what: "# syntax=" + v}
	}
	return nil
}

// resolveSyntax makes sure the frontend image can be pulled before the
// gateway starts, so that a bad one is an error at the line naming it.
func (e *Engine) resolveSyntax(ctx context.Context, use *syntaxUse, r frontend.ImageResolver) error {
	if use == nil {
		return nil
	}
	if _, err := r.ResolveImageConfig(ctx, use.image, e.platform); err != nil {
		return use.errorf(classOf(err), "cannot use frontend image %s: %v", use.image, err)
	}
	return nil
}

// classOf returns the errdefs class of err (ErrUnavailable when it has
// none: the registry could not be used).
func classOf(err error) error {
	for _, c := range []error{errdefs.ErrNotFound, errdefs.ErrUnauthenticated, errdefs.ErrPermissionDenied, errdefs.ErrInvalidArgument, errdefs.ErrCanceled, errdefs.ErrDeadlineExceeded} {
		if errors.Is(err, c) {
			return c
		}
	}
	return errdefs.ErrUnavailable
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
