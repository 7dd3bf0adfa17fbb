package instructions

import (
	"github.com/kiln-build/kiln/frontend/dockerfile/parser"
)

// copyFlagDefs are the flags COPY and ADD share.
var copyFlagDefs = []flagDef{
	{"chown", stringFlag}, {"chmod", stringFlag}, {"link", boolFlag}, {"parents", boolFlag}, {"exclude", listFlag},
}

func parseCopy(r *request) (Command, error) {
	f, err := r.flags(append([]flagDef{{"from", stringFlag}}, copyFlagDefs...)...)
	if err != nil {
		return nil, err
	}
	sd, err := sourcesAndDest(r)
	if err != nil {
		return nil, err
	}
	cf, err := copyFlags(r, f)
	if err != nil {
		return nil, err
	}
	c := &CopyCommand{Location: r.loc, SourcesAndDest: sd, CopyFlags: cf, From: f.str("from")}
	if f.isSet("from") && c.From == "" {
		return nil, r.errorf("COPY: --from needs a stage name, image or stage index")
	}
	if hasVariable(c.From) {
		return nil, r.errorf("COPY: variable expansion is not supported for --from; define a stage with FROM (which can use ARGs) and copy from that stage")
	}
	return c, nil
}

func parseAdd(r *request) (Command, error) {
	f, err := r.flags(append([]flagDef{{"checksum", stringFlag}, {"keep-git-dir", boolFlag}, {"unpack", boolFlag}}, copyFlagDefs...)...)
	if err != nil {
		return nil, err
	}
	sd, err := sourcesAndDest(r)
	if err != nil {
		return nil, err
	}
	cf, err := copyFlags(r, f)
	if err != nil {
		return nil, err
	}
	c := &AddCommand{Location: r.loc, SourcesAndDest: sd, CopyFlags: cf, Checksum: f.str("checksum"), KeepGitDir: f.boolean("keep-git-dir")}
	if f.isSet("unpack") {
		u := f.boolean("unpack")
		c.Unpack = &u
	}
	if err := c.check(false); err != nil {
		return nil, r.loc.WrapError(err)
	}
	return c, nil
}

// check validates what can be validated: everything when expanded is
// set, otherwise the values without variables.
func (c *AddCommand) check(expanded bool) error {
	if c.Checksum == "" || (!expanded && hasVariable(c.Checksum)) {
		return nil
	}
	if err := validateChecksum(c.Checksum); err != nil {
		return errorf("ADD --checksum: %v", err)
	}
	for _, s := range c.Sources {
		if !expanded && hasVariable(s) {
			continue
		}
		if src := ParseAddSource(s); src.Kind == SourceLocal {
			return errorf("ADD --checksum is only supported for HTTP(S) and Git sources, not for the local path %q", s)
		}
	}
	if len(c.Contents) > 0 {
		return errorf("ADD --checksum is only supported for HTTP(S) and Git sources, not for heredocs")
	}
	return nil
}

// sourcesAndDest splits COPY/ADD arguments into sources, heredoc contents
// and the destination.
func sourcesAndDest(r *request) (SourcesAndDest, error) {
	args := r.node.Args
	if len(args) < 2 {
		return SourcesAndDest{}, r.errorf("%s requires at least two arguments, but only %d provided: destination could not be determined", r.name, len(args))
	}
	sd := SourcesAndDest{Dest: args[len(args)-1], JSON: r.node.JSON}
	if !sd.JSON && parser.ParseHeredoc(sd.Dest, r.esc) != nil {
		return SourcesAndDest{}, r.errorf("%s cannot accept a heredoc as a destination", r.name)
	}
	for _, src := range args[:len(args)-1] {
		var h *parser.Heredoc
		if !sd.JSON {
			h = parser.ParseHeredoc(src, r.esc)
		}
		if h == nil {
			sd.Sources = append(sd.Sources, src)
			continue
		}
		found := false
		for _, doc := range r.heredocs {
			if doc.Name == h.Name {
				sd.Contents = append(sd.Contents, SourceContent{Path: h.Name, Data: doc.Body(), Expand: doc.Expand})
				found = true
				break
			}
		}
		if !found {
			return SourcesAndDest{}, r.errorf("%s: no body for heredoc %s", r.name, src)
		}
	}
	return sd, nil
}

func copyFlags(r *request, f *flagValues) (CopyFlags, error) {
	cf := CopyFlags{
		Chown:    f.str("chown"),
		Chmod:    f.str("chmod"),
		Link:     f.boolean("link"),
		Parents:  f.boolean("parents"),
		Excludes: f.list("exclude"),
	}
	if f.isSet("chmod") && !hasVariable(cf.Chmod) {
		m, err := ParseFileMode(cf.Chmod)
		if err != nil {
			return CopyFlags{}, r.errorf("%s: %v", r.name, err)
		}
		cf.Mode = m
	}
	if f.isSet("chown") && cf.Chown == "" {
		return CopyFlags{}, r.errorf("%s: --chown needs a user, user:group, uid or uid:gid", r.name)
	}
	return cf, nil
}
