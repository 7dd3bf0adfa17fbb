package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/internal/proclog"
	"github.com/kiln-build/kiln/progress"
)

// Version is the protocol version plugins get as KILN_EXPORTER_VERSION.
const Version = "1"

// Limits on what a plugin writes.
const (
	// MaxLog is how much of a plugin's stderr one export shows in the
	// build's progress; the rest is counted and dropped.
	MaxLog = 1 << 20
	// MaxResponse is the largest JSON response a plugin may print.
	MaxResponse = 1 << 20
)

// defaultPath is the PATH a plugin runs with unless its env sets one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// killGrace is how long Wait waits for the plugin's pipes to close after
// it exited or was killed (a child of the plugin may still hold them).
const killGrace = 5 * time.Second

// Options configures the exporter of one [[exporter.plugin]].
type Options struct {
	// Name is the output type (--output type=Name).
	Name string
	// Command is the program (an absolute path) and its arguments.
	Command []string
	// Env are KEY=VALUE entries added to the plugin's environment.
	Env []string
	// Timeout bounds one export; 0 means none.
	Timeout time.Duration
}

// Factory returns the exporter.Factory of the plugin o: cmd/kilnd adds it
// to the daemon's exporters under o.Name.
func Factory(o Options) exporter.Factory {
	return exporter.Factory{
		New: func(attrs map[string]string, deps exporter.Deps) (exporter.Exporter, error) {
			return New(o, attrs, deps)
		},
		// The result is an image, so --cache-to type=inline can ride in
		// its config.
		Image: true,
	}
}

// New returns the exporter of one output of the plugin o, with the
// output's attributes (type= taken out). kilnd applies the layout
// attributes of type=oci (name, compression, oci-mediatypes,
// annotation.*, ...; see exporter.LayoutOptions) to the stream; every
// attribute is passed to the plugin.
func New(o Options, attrs map[string]string, deps exporter.Deps) (exporter.Exporter, error) {
	if o.Name == "" || len(o.Command) == 0 {
		return nil, errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("exporter plugin %q: no command", o.Name))
	}
	tar, err := exporter.LayoutOptions(o.Name, attrs)
	if err != nil {
		return nil, err
	}
	e := &pluginExporter{opts: o, attrs: attrs, deps: deps, tar: tar}
	// Check the names, format and dependencies now, not after the build.
	if _, err := e.tarball(nopWriter{}); err != nil {
		return nil, fmt.Errorf("type=%s: %w", o.Name, err)
	}
	return e, nil
}

type pluginExporter struct {
	opts  Options
	attrs map[string]string
	deps  exporter.Deps
	tar   exporter.TarballOptions
}

var _ exporter.Exporter = (*pluginExporter)(nil)

// tarball returns the type=oci exporter that writes the layout to w.
func (e *pluginExporter) tarball(w io.WriteCloser) (exporter.Exporter, error) {
	deps := e.deps
	deps.Tags = nil
	deps.Writer = func() (io.WriteCloser, error) { return w, nil }
	return exporter.NewTarball(deps, e.tar)
}

// Export runs the plugin, streams the result to it and returns kilnd's
// response merged with the plugin's.
func (e *pluginExporter) Export(ctx context.Context, r exporter.Result) (exporter.Response, error) {
	step := "exporting to " + e.opts.Name
	pw := progress.FromContext(ctx)
	done := progress.InternalStep(pw, step)
	resp, err := e.export(ctx, r, pw, progress.InternalDigest(step))
	done(err)
	return resp, err
}

func (e *pluginExporter) export(ctx context.Context, r exporter.Result, pw progress.Writer, vertex digest.Digest) (exporter.Response, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if e.opts.Timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, e.opts.Timeout,
			fmt.Errorf("timed out after %s ([[exporter.plugin]] timeout)", e.opts.Timeout))
		defer stop()
	}
	env, err := e.environ()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, e.opts.Command[0], e.opts.Command[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: a plugin that is a script takes its children
		// down with it.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = killGrace
	stdout := &cappedBuffer{max: MaxResponse}
	stderr := proclog.NewStderr()
	cmd.Stdout = stdout
	cmd.Stderr = io.MultiWriter(stderr, &progressLog{log: progress.LogWriter(pw, vertex, 2), max: MaxLog})
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("exporter plugin %s: %w", e.opts.Name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exporter plugin %s: start %s: %w", e.opts.Name, e.opts.Command[0], err)
	}
	tb, err := e.tarball(stdin)
	if err == nil {
		var resp exporter.Response
		resp, err = tb.Export(ctx, r)
		if err == nil {
			return e.finish(ctx, cmd, stdout, stderr, resp)
		}
	}
	// Writing failed: because the plugin stopped reading (it exited, its
	// status says why), or on kilnd's side (cancel it).
	if !errors.Is(err, syscall.EPIPE) {
		cancel(err)
	}
	waitErr := cmd.Wait()
	if cause := context.Cause(ctx); ctx.Err() != nil && !errors.Is(cause, err) {
		return nil, fmt.Errorf("exporter plugin %s: %w", e.opts.Name, cause)
	}
	if waitErr != nil && errors.Is(err, syscall.EPIPE) {
		return nil, e.exitError(waitErr, stderr)
	}
	if errors.Is(err, syscall.EPIPE) {
		return nil, fmt.Errorf("exporter plugin %s exited before reading the whole image layout from its standard input%s", e.opts.Name, tail(stderr))
	}
	return nil, fmt.Errorf("exporter plugin %s: %w", e.opts.Name, err)
}

// finish waits for the plugin after the layout was written and reads its
// response.
func (e *pluginExporter) finish(ctx context.Context, cmd *exec.Cmd, stdout *cappedBuffer, stderr *proclog.Stderr, resp exporter.Response) (exporter.Response, error) {
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("exporter plugin %s: %w", e.opts.Name, context.Cause(ctx))
		}
		return nil, e.exitError(err, stderr)
	}
	if stdout.over {
		return nil, fmt.Errorf("exporter plugin %s: its response on standard output is larger than %d bytes", e.opts.Name, MaxResponse)
	}
	out := bytes.TrimSpace(stdout.buf.Bytes())
	if len(out) == 0 {
		return resp, nil
	}
	var extra map[string]string
	if err := json.Unmarshal(out, &extra); err != nil {
		return nil, fmt.Errorf("exporter plugin %s: its standard output is not a JSON object of strings (%v): %s", e.opts.Name, err, clip(string(out), 200))
	}
	for k, v := range extra {
		if _, ok := resp[k]; !ok {
			resp[k] = v
		}
	}
	return resp, nil
}

// exitError describes a plugin that failed.
func (e *pluginExporter) exitError(err error, stderr *proclog.Stderr) error {
	return fmt.Errorf("exporter plugin %s (%s) failed: %w%s", e.opts.Name, e.opts.Command[0], err, tail(stderr))
}

// environ is the plugin's environment (see the package documentation).
func (e *pluginExporter) environ() ([]string, error) {
	attrs, err := json.Marshal(e.attrs)
	if err != nil {
		return nil, fmt.Errorf("exporter plugin %s: encode attributes: %w", e.opts.Name, err)
	}
	env := []string{"PATH=" + defaultPath}
	env = append(env, e.opts.Env...)
	env = append(env,
		"KILN_EXPORTER_VERSION="+Version,
		"KILN_EXPORTER_NAME="+e.opts.Name,
		"KILN_EXPORTER_ATTRS="+string(attrs),
	)
	byVar := map[string][]string{}
	for k := range e.attrs {
		v := AttrVar(k)
		byVar[v] = append(byVar[v], k)
	}
	vars := make([]string, 0, len(byVar))
	for v := range byVar {
		vars = append(vars, v)
	}
	sort.Strings(vars)
	for _, v := range vars {
		if keys := byVar[v]; len(keys) == 1 {
			env = append(env, v+"="+e.attrs[keys[0]])
		}
	}
	return dedupEnv(env), nil
}

// AttrVar is the environment variable of attribute key:
// KILN_EXPORTER_ATTR_ and key upper-cased, other characters than A-Z and
// 0-9 replaced by '_' ("annotation.org.x" is
// KILN_EXPORTER_ATTR_ANNOTATION_ORG_X).
func AttrVar(key string) string {
	b := []byte(strings.ToUpper(key))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return "KILN_EXPORTER_ATTR_" + string(b)
}

// dedupEnv keeps the last entry of each variable (env may replace PATH).
func dedupEnv(env []string) []string {
	last := map[string]int{}
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		last[k] = i
	}
	out := env[:0:0]
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if last[k] == i {
			out = append(out, kv)
		}
	}
	return out
}

// tail is the end of a plugin's stderr for an error message: its last
// lines, or "" for none.
func tail(s *proclog.Stderr) string {
	const maxLines, maxBytes = 5, 2048
	lines := strings.Split(strings.TrimSpace(s.String()), "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "" })
	if len(lines) == 0 {
		return ""
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	text := strings.Join(lines, "\n")
	if len(text) > maxBytes {
		text = "…" + text[len(text)-maxBytes:]
	}
	return "; its stderr ends:\n" + text
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// cappedBuffer keeps the first max bytes written and notes more.
type cappedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); len(p) > room {
		c.over = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.buf.Write(p)
}

// progressLog writes a plugin's stderr as log lines of its export step
// (through progress.LogWriter), up to max bytes.
type progressLog struct {
	log     *progress.StreamWriter
	max     int
	mu      sync.Mutex
	written int
	noted   bool
}

func (l *progressLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	data := p
	if room := l.max - l.written; len(data) > room {
		data = data[:max(room, 0)]
	}
	if len(data) > 0 {
		l.written += len(data)
		l.log.Write(data)
	}
	if len(data) < len(p) && !l.noted {
		l.noted = true
		fmt.Fprintf(l.log, "\n[kilnd: the plugin's stderr past %d bytes is not shown]\n", l.max)
	}
	return len(p), nil
}

// nopWriter is the stream New checks the tarball exporter with.
type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriter) Close() error                { return nil }
