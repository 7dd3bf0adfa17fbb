package instructions

import (
	"fmt"
)

// Expander expands the words of one instruction with one environment (the
// ARG and ENV values in force at that instruction). *shell.Expander
// implements it and records which variables were used.
type Expander interface {
	// ExpandWord expands a word in single-word mode (quotes removed,
	// whitespace kept).
	ExpandWord(word string) (string, error)
	// ExpandWords expands a word in word-list mode (split on unquoted
	// whitespace).
	ExpandWords(word string) ([]string, error)
	// ExpandHeredoc expands a heredoc body: $ references only, quotes
	// left alone.
	ExpandHeredoc(body string) (string, error)
}

// Expand returns cmd with its variables expanded by ex, as Docker does:
// ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR,
// ARG defaults, --chown, --chmod, --checksum, --exclude, --platform and the
// --mount options. RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK and heredoc
// bodies of RUN are left to the shell that runs them; ONBUILD triggers are
// expanded in the build that fires them; COPY --from is never expanded.
//
// The result is a new command of the same concrete type; cmd is not
// modified, so one parsed Dockerfile can be expanded once per platform.
// Values checked only after expansion (a --chmod or --mount option that
// held a variable) are checked here.
func Expand(cmd Command, ex Expander) (Command, error) {
	switch c := cmd.(type) {
	case *FromCommand:
		return c.Expand(ex)
	case *EnvCommand:
		return c.Expand(ex)
	case *LabelCommand:
		return c.Expand(ex)
	case *ArgCommand:
		return c.Expand(ex)
	case *ExposeCommand:
		return c.Expand(ex)
	case *VolumeCommand:
		return c.Expand(ex)
	case *UserCommand:
		return c.Expand(ex)
	case *WorkdirCommand:
		return c.Expand(ex)
	case *StopSignalCommand:
		return c.Expand(ex)
	case *CopyCommand:
		return c.Expand(ex)
	case *AddCommand:
		return c.Expand(ex)
	case *RunCommand:
		return c.Expand(ex)
	}
	return cmd, nil
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// expandError places an expansion error at the command's location.
func expandError(c Command, err error) error {
	return c.Loc().Errorf("%s: %w", c.Name(), err)
}

// Expand returns c with BaseName and Platform expanded (with the meta-ARGs).
func (c *FromCommand) Expand(ex Expander) (*FromCommand, error) {
	out := *c
	var err error
	if out.BaseName, err = ex.ExpandWord(c.BaseName); err != nil {
		return nil, expandError(c, err)
	}
	if out.Platform, err = ex.ExpandWord(c.Platform); err != nil {
		return nil, expandError(c, err)
	}
	if out.BaseName == "" {
		return nil, c.Errorf("FROM: base name (%s) should not be blank", c.BaseName)
	}
	return &out, nil
}

func expandKeyValues(c Command, kvs []KeyValue, ex Expander) ([]KeyValue, error) {
	out := make([]KeyValue, len(kvs))
	for i, kv := range kvs {
		k, err := ex.ExpandWord(kv.Key)
		if err != nil {
			return nil, expandError(c, err)
		}
		v, err := ex.ExpandWord(kv.Value)
		if err != nil {
			return nil, expandError(c, err)
		}
		if k == "" {
			return nil, c.Loc().Errorf("%s names can not be blank (%q expands to nothing)", c.Name(), kv.Key)
		}
		out[i] = KeyValue{Key: k, Value: v}
	}
	return out, nil
}

// Expand returns c with keys and values expanded. Every pair sees the
// environment from before the instruction: in "ENV A=1 B=$A", B gets the
// previous value of A.
func (c *EnvCommand) Expand(ex Expander) (*EnvCommand, error) {
	kvs, err := expandKeyValues(c, c.Env, ex)
	if err != nil {
		return nil, err
	}
	out := *c
	out.Env = kvs
	return &out, nil
}

// Expand returns c with keys and values expanded.
func (c *LabelCommand) Expand(ex Expander) (*LabelCommand, error) {
	kvs, err := expandKeyValues(c, c.Labels, ex)
	if err != nil {
		return nil, err
	}
	out := *c
	out.Labels = kvs
	return &out, nil
}

// Expand returns c with names and defaults expanded, all with ex's one
// environment. A converter that wants "ARG A=1 B=$A" to see the new A
// expands each ArgDecl itself with a growing environment.
func (c *ArgCommand) Expand(ex Expander) (*ArgCommand, error) {
	out := *c
	out.Args = make([]ArgDecl, len(c.Args))
	for i, a := range c.Args {
		k, err := ex.ExpandWord(a.Key)
		if err != nil {
			return nil, expandError(c, err)
		}
		a.Key = k
		if a.HasValue {
			if a.Value, err = ex.ExpandWord(a.Value); err != nil {
				return nil, expandError(c, err)
			}
		}
		out.Args[i] = a
	}
	return &out, nil
}

// Expand returns c with every word expanded in word-list mode ("EXPOSE
// $PORTS" may give several ports) and checked with ParsePort.
func (c *ExposeCommand) Expand(ex Expander) (*ExposeCommand, error) {
	out := *c
	out.Ports = nil
	for _, p := range c.Ports {
		words, err := ex.ExpandWords(p)
		if err != nil {
			return nil, expandError(c, err)
		}
		for _, w := range words {
			if _, err := ParsePort(w); err != nil {
				return nil, expandError(c, err)
			}
		}
		out.Ports = append(out.Ports, words...)
	}
	return &out, nil
}

// Expand returns c with every volume expanded.
func (c *VolumeCommand) Expand(ex Expander) (*VolumeCommand, error) {
	out := *c
	out.Volumes = make([]string, len(c.Volumes))
	for i, v := range c.Volumes {
		e, err := ex.ExpandWord(v)
		if err != nil {
			return nil, expandError(c, err)
		}
		if e == "" {
			return nil, c.Errorf("VOLUME specified can not be an empty string (%q expands to nothing)", v)
		}
		out.Volumes[i] = e
	}
	return &out, nil
}

// Expand returns c with the user expanded.
func (c *UserCommand) Expand(ex Expander) (*UserCommand, error) {
	v, err := ex.ExpandWord(c.User)
	if err != nil {
		return nil, expandError(c, err)
	}
	out := *c
	out.User = v
	return &out, nil
}

// Expand returns c with the path expanded.
func (c *WorkdirCommand) Expand(ex Expander) (*WorkdirCommand, error) {
	v, err := ex.ExpandWord(c.Path)
	if err != nil {
		return nil, expandError(c, err)
	}
	out := *c
	out.Path = v
	return &out, nil
}

// Expand returns c with the signal expanded and checked.
func (c *StopSignalCommand) Expand(ex Expander) (*StopSignalCommand, error) {
	v, err := ex.ExpandWord(c.Signal)
	if err != nil {
		return nil, expandError(c, err)
	}
	if err := validateSignal(v); err != nil {
		return nil, expandError(c, err)
	}
	out := *c
	out.Signal = v
	return &out, nil
}

func expandSources(c Command, sd SourcesAndDest, ex Expander) (SourcesAndDest, error) {
	out := sd
	out.Sources = nil
	for _, s := range sd.Sources {
		v, err := ex.ExpandWord(s)
		if err != nil {
			return out, expandError(c, err)
		}
		out.Sources = append(out.Sources, v)
	}
	var err error
	if out.Dest, err = ex.ExpandWord(sd.Dest); err != nil {
		return out, expandError(c, err)
	}
	out.Contents = nil
	for _, sc := range sd.Contents {
		if sc.Expand {
			if sc.Data, err = ex.ExpandHeredoc(sc.Data); err != nil {
				return out, expandError(c, err)
			}
		}
		out.Contents = append(out.Contents, sc)
	}
	return out, nil
}

func expandCopyFlags(c Command, cf CopyFlags, ex Expander) (CopyFlags, error) {
	out := cf
	var err error
	if out.Chown, err = ex.ExpandWord(cf.Chown); err != nil {
		return out, expandError(c, err)
	}
	if cf.Chmod != "" {
		if out.Chmod, err = ex.ExpandWord(cf.Chmod); err != nil {
			return out, expandError(c, err)
		}
		if out.Mode, err = ParseFileMode(out.Chmod); err != nil {
			return out, expandError(c, err)
		}
	}
	out.Excludes = nil
	for _, e := range cf.Excludes {
		v, err := ex.ExpandWord(e)
		if err != nil {
			return out, expandError(c, err)
		}
		out.Excludes = append(out.Excludes, v)
	}
	return out, nil
}

// Expand returns c with sources, destination, heredoc bodies (unless their
// delimiter was quoted), --chown, --chmod and --exclude expanded.
func (c *CopyCommand) Expand(ex Expander) (*CopyCommand, error) {
	sd, err := expandSources(c, c.SourcesAndDest, ex)
	if err != nil {
		return nil, err
	}
	cf, err := expandCopyFlags(c, c.CopyFlags, ex)
	if err != nil {
		return nil, err
	}
	out := *c
	out.SourcesAndDest, out.CopyFlags = sd, cf
	return &out, nil
}

// Expand returns c expanded like COPY, plus --checksum, and checks that a
// checksum goes with remote sources only.
func (c *AddCommand) Expand(ex Expander) (*AddCommand, error) {
	sd, err := expandSources(c, c.SourcesAndDest, ex)
	if err != nil {
		return nil, err
	}
	cf, err := expandCopyFlags(c, c.CopyFlags, ex)
	if err != nil {
		return nil, err
	}
	out := *c
	out.SourcesAndDest, out.CopyFlags = sd, cf
	if out.Checksum, err = ex.ExpandWord(c.Checksum); err != nil {
		return nil, expandError(c, err)
	}
	if err := out.check(true); err != nil {
		return nil, c.WrapError(err)
	}
	return &out, nil
}

// Expand returns c with its --mount options expanded and checked. The
// command itself is left for the shell.
func (c *RunCommand) Expand(ex Expander) (*RunCommand, error) {
	out := *c
	out.Mounts = make([]*Mount, len(c.Mounts))
	for i, m := range c.Mounts {
		em, err := parseMount(m.Raw, ex.ExpandWord)
		if err != nil {
			return nil, c.Errorf("RUN --mount=%s: %w", m.Raw, err)
		}
		out.Mounts[i] = em
	}
	return &out, nil
}
