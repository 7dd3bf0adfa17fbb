package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/kiln-build/kiln/core/errdefs"
)

// defaultTOML is the built-in configuration; every key is documented there.
//
//go:embed default.toml
var defaultTOML []byte

// DefaultTOML returns the text of the built-in configuration.
func DefaultTOML() []byte { return bytes.Clone(defaultTOML) }

// Warning is a problem that does not stop kilnd, such as a plaintext
// password in the file.
type Warning struct {
	File    string
	Line    int
	Key     string // display form, e.g. "[[registry.config]] password"
	Message string
}

func (w Warning) String() string {
	var b strings.Builder
	if w.File != "" {
		b.WriteString(w.File)
		if w.Line > 0 {
			fmt.Fprintf(&b, ":%d", w.Line)
		}
		b.WriteString(": ")
	}
	if w.Key != "" {
		b.WriteString(w.Key + ": ")
	}
	b.WriteString(w.Message)
	return b.String()
}

// FieldError is a problem with one configuration key. Load wraps it in an
// errdefs.SourceError that adds the file and line.
type FieldError struct {
	Key string // display form: "[[cache.registry]] type", "root"
	Err error
}

func (e *FieldError) Error() string {
	if e.Key == "" {
		return e.Err.Error()
	}
	return e.Key + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// Default returns the built-in configuration (default.toml) with the
// environment's defaults filled in for the running process.
func Default() *Config { return DefaultFor(HostEnv()) }

// DefaultFor is Default for the environment e.
func DefaultFor(e Env) *Config {
	var fc fileConfig
	if err := toml.NewDecoder(bytes.NewReader(defaultTOML)).DisallowUnknownFields().Decode(&fc); err != nil {
		// default.toml is compiled in and covered by tests.
		panic(fmt.Sprintf("config: built-in default.toml does not load: %v", err))
	}
	l := &loader{file: "default.toml"}
	cfg := l.convert(&fc)
	if len(l.errs) > 0 {
		panic(fmt.Sprintf("config: built-in default.toml does not load: %v", errors.Join(l.errs...)))
	}
	cfg.resolve(e)
	return cfg
}

// LoadFile loads the configuration file at path. A missing file is an
// error (errdefs.ErrNotFound class); callers that treat a missing default
// file as "use defaults" check for it.
func LoadFile(path string) (*Config, []Warning, error) {
	return LoadFileFor(path, HostEnv())
}

// LoadFileFor is LoadFile for the environment e.
func LoadFileFor(path string, e Env) (*Config, []Warning, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, errdefs.WithClass(errdefs.ErrNotFound, fmt.Errorf("config file %s does not exist", path))
		}
		return nil, nil, fmt.Errorf("open config file: %w", err)
	}
	defer f.Close()
	cfg, warns, err := LoadFor(f, path, e)
	if cfg != nil {
		cfg.File = path
	}
	return cfg, warns, err
}

// Load reads a kilnd.toml from r on top of the built-in defaults. filename
// is only used in messages. Unknown keys, wrong types and invalid values
// are errors of the errdefs.ErrInvalidArgument class whose messages read
// "file:line: key: what is wrong", one line per problem.
func Load(r io.Reader, filename string) (*Config, []Warning, error) {
	return LoadFor(r, filename, HostEnv())
}

// LoadFor is Load for the environment e.
func LoadFor(r io.Reader, filename string, e Env) (*Config, []Warning, error) {
	doc, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", filename, err)
	}
	var fc fileConfig
	if err := toml.NewDecoder(bytes.NewReader(defaultTOML)).DisallowUnknownFields().Decode(&fc); err != nil {
		return nil, nil, fmt.Errorf("built-in defaults: %w", err)
	}
	l := &loader{file: filename, pos: indexPositions(doc)}
	if err := toml.NewDecoder(bytes.NewReader(doc)).DisallowUnknownFields().Decode(&fc); err != nil {
		l.decodeError(err)
		return nil, nil, l.result()
	}
	cfg := l.convert(&fc)
	cfg.src = &source{file: filename, pos: l.pos}
	cfg.resolve(e)
	for _, fe := range cfg.validate(l.hostPath) {
		l.errs = append(l.errs, l.located(fe.path, &fe.FieldError))
	}
	l.warn(cfg)
	if err := l.result(); err != nil {
		return nil, l.warns, err
	}
	return cfg, l.warns, nil
}

// loader carries the state of one Load: where keys are, what went wrong.
type loader struct {
	file  string
	pos   *positions
	errs  []error
	warns []Warning
	// hosts remembers where each registry host was first defined, and
	// hostKeys which of its tables set each key.
	hosts    map[string]keyPath
	hostKeys map[string]map[string]keyPath
}

// hostPath returns the table of host that set key ("" for the first one).
func (l *loader) hostPath(host, key string) keyPath {
	if p, ok := l.hostKeys[host][key]; ok {
		return p
	}
	if p, ok := l.hosts[host]; ok {
		return p
	}
	return keyPath{}.key("registry", host)
}

// located wraps err with the file and the line of path.
func (l *loader) located(path keyPath, err error) error {
	return &errdefs.SourceError{File: l.file, Range: lineRange(l.pos.lineOf(path)), Err: err}
}

func lineRange(line int) errdefs.Range { return errdefs.Range{Start: line, End: line} }

// fail records a problem with the key at path.
func (l *loader) fail(path keyPath, format string, args ...any) {
	fe := &FieldError{Key: path.Display(), Err: fmt.Errorf(format, args...)}
	l.errs = append(l.errs, l.located(path, fe))
}

func (l *loader) result() error { return JoinErrors(l.errs) }

// JoinErrors joins the problems found in a config file, in line order
// (those without a line first), as one invalid-argument error; nil for
// none.
func JoinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	errs = slices.Clone(errs)
	sort.SliceStable(errs, func(i, j int) bool { return errLine(errs[i]) < errLine(errs[j]) })
	return errdefs.WithClass(errdefs.ErrInvalidArgument, errors.Join(errs...))
}

func errLine(err error) int {
	var se *errdefs.SourceError
	if errors.As(err, &se) {
		return se.Range.Start
	}
	return 0
}

// hints explain buildkitd.toml keys that kilnd does not take.
var hints = map[string]string{
	"worker.oci.rootless":         `use [rootless] enabled instead`,
	"worker.oci.noProcessSandbox": `kilnd always runs steps in their own pid namespace`,
	"worker.oci.networkMode":      `spelled network-mode in kilnd.toml`,
}

// decodeError turns a go-toml error into located errors.
func (l *loader) decodeError(err error) {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		for i := range sm.Errors {
			e := &sm.Errors[i]
			line, _ := e.Position()
			names := []string(e.Key())
			msg := "unknown key"
			table := strings.Contains(e.Error(), "missing table")
			if table {
				msg = "unknown table"
			}
			if h, ok := hints[strings.Join(names, ".")]; ok {
				msg += " (" + h + ")"
			}
			key := l.displayAt(line, names)
			if table {
				key = l.headerAt(line, names)
			}
			l.errs = append(l.errs, &errdefs.SourceError{File: l.file, Range: lineRange(line), Err: &FieldError{Key: key, Err: errors.New(msg)}})
		}
		return
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		names := []string(de.Key())
		if len(names) == 0 {
			l.errs = append(l.errs, &errdefs.SourceError{File: l.file, Range: lineRange(line), Err: fmt.Errorf("syntax error: %s", msg)})
			return
		}
		l.errs = append(l.errs, &errdefs.SourceError{File: l.file, Range: lineRange(line),
			Err: &FieldError{Key: l.displayAt(line, names), Err: errors.New(typeMessage(msg))}})
		return
	}
	l.errs = append(l.errs, &errdefs.SourceError{File: l.file, Err: err})
}

// displayAt renders the key names found on line, using the position index
// to know which tables are arrays.
func (l *loader) displayAt(line int, names []string) string {
	if p, ok := l.pos.find(line, names); ok && p.Display() != "" {
		return p.Display()
	}
	return keyPath{}.key(names...).Display()
}

func (l *loader) headerAt(line int, names []string) string {
	h := strings.Join(quoteAll(names), ".")
	if p, ok := l.pos.find(line, names); ok && len(p) > 0 && p[len(p)-1].index >= 0 {
		return "[[" + h + "]]"
	}
	return "[" + h + "]"
}

var (
	typeErrRE  = regexp.MustCompile(`^cannot decode TOML ([a-z ]+?) into .* of type (\S+)$`)
	tableErrRE = regexp.MustCompile(`^cannot store a table in a (\S+)$`)
)

// typeMessage rewrites go-toml's Go-flavoured type errors in TOML terms.
func typeMessage(msg string) string {
	if m := tableErrRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("wrong type: want %s, got a table", goTypeWord(m[1]))
	}
	m := typeErrRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	return fmt.Sprintf("wrong type: want %s, got %s", goTypeWord(m[2]), article(m[1]))
}

func goTypeWord(t string) string {
	t = strings.TrimPrefix(t, "*")
	switch {
	case t == "string":
		return "a string"
	case t == "bool":
		return "a boolean (true or false)"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "[]string":
		return `an array of strings (["a", "b"])`
	case strings.HasPrefix(t, "[]"):
		return "an array of tables"
	case strings.HasPrefix(t, "map["):
		return "a table"
	default:
		return "a table"
	}
}

func article(kind string) string {
	if kind == "" {
		return "a value"
	}
	switch kind[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + kind
	}
	return "a " + kind
}
