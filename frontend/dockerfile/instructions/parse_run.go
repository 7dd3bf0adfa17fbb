package instructions

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/core/sandbox"
)

func cmdLine(r *request) CmdLine {
	return CmdLine{Args: append([]string(nil), r.node.Args...), JSON: r.node.JSON}
}

func parseRun(r *request) (Command, error) {
	f, err := r.flags(flagDef{"mount", listFlag}, flagDef{"network", stringFlag}, flagDef{"security", stringFlag})
	if err != nil {
		return nil, err
	}
	c := &RunCommand{Location: r.loc, CmdLine: cmdLine(r), Heredocs: r.heredocs}
	if len(c.Args) == 0 {
		return nil, r.errorf("RUN requires at least one argument")
	}
	if f.isSet("network") {
		var ok bool
		if c.Network, ok = sandbox.ParseNetMode(f.str("network")); !ok || f.str("network") == "" {
			return nil, r.loc.WrapError(suggestError(fmt.Sprintf("RUN: unsupported --network value %q; valid values: default, host, none", f.str("network")),
				f.str("network"), []string{"default", "host", "none"}))
		}
	}
	if f.isSet("security") {
		var ok bool
		if c.Security, ok = sandbox.ParseSecurityMode(f.str("security")); !ok || f.str("security") == "" {
			return nil, r.loc.WrapError(suggestError(fmt.Sprintf("RUN: unsupported --security value %q; valid values: insecure, sandbox", f.str("security")),
				f.str("security"), []string{"insecure", "sandbox"}))
		}
	}
	for _, raw := range f.list("mount") {
		m, err := parseMount(raw, nil)
		if err != nil {
			return nil, r.errorf("RUN --mount=%s: %v", raw, err)
		}
		c.Mounts = append(c.Mounts, m)
	}
	return c, nil
}

func parseCmd(r *request) (Command, error) {
	if err := r.noFlags(); err != nil {
		return nil, err
	}
	return &CmdCommand{Location: r.loc, CmdLine: cmdLine(r)}, nil
}

func parseEntrypoint(r *request) (Command, error) {
	if err := r.noFlags(); err != nil {
		return nil, err
	}
	return &EntrypointCommand{Location: r.loc, CmdLine: cmdLine(r)}, nil
}

func parseShell(r *request) (Command, error) {
	if err := r.noFlags(); err != nil {
		return nil, err
	}
	if len(r.node.Args) == 0 {
		return nil, r.errorf("SHELL requires at least one argument")
	}
	if !r.node.JSON {
		return nil, r.errorf(`SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/sh", "-c"]`)
	}
	return &ShellCommand{Location: r.loc, Shell: append([]string(nil), r.node.Args...)}, nil
}

// minHealthDuration is the shortest non-zero HEALTHCHECK duration Docker
// accepts.
const minHealthDuration = time.Millisecond

func parseHealthcheck(r *request) (Command, error) {
	args := r.node.Args
	if len(args) == 0 {
		return nil, r.errorf("HEALTHCHECK requires at least one argument")
	}
	c := &HealthcheckCommand{Location: r.loc}
	typ := strings.ToUpper(args[0])
	if typ == "NONE" {
		if len(args) > 1 {
			return nil, r.errorf("HEALTHCHECK NONE takes no arguments")
		}
		if err := r.noFlags(); err != nil {
			return nil, err
		}
		c.Test = []string{"NONE"}
		return c, nil
	}
	f, err := r.flags(flagDef{"interval", stringFlag}, flagDef{"timeout", stringFlag}, flagDef{"start-period", stringFlag},
		flagDef{"start-interval", stringFlag}, flagDef{"retries", stringFlag})
	if err != nil {
		return nil, err
	}
	if typ != "CMD" {
		return nil, r.errorf("HEALTHCHECK: unknown type %q (try CMD or NONE)", args[0])
	}
	if len(args) == 1 {
		return nil, r.errorf("HEALTHCHECK CMD: missing command after CMD")
	}
	if r.node.JSON {
		c.Test = append([]string{"CMD"}, args[1:]...)
	} else {
		c.Test = []string{"CMD-SHELL", args[1]}
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{
		{"interval", &c.Interval}, {"timeout", &c.Timeout}, {"start-period", &c.StartPeriod}, {"start-interval", &c.StartInterval},
	} {
		v := f.str(d.name)
		if v == "" {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil {
			return nil, r.errorf("HEALTHCHECK: invalid --%s %q: want a duration such as 30s or 1m30s", d.name, v)
		}
		if dur != 0 && dur < minHealthDuration {
			return nil, r.errorf("HEALTHCHECK: --%s %s cannot be less than %s", d.name, v, minHealthDuration)
		}
		*d.dst = dur
	}
	if v := f.str("retries"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return nil, r.errorf("HEALTHCHECK: invalid --retries %q: want a whole number", v)
		}
		if n < 0 {
			return nil, r.errorf("HEALTHCHECK: --retries cannot be negative (%d)", n)
		}
		c.Retries = int(n)
	}
	return c, nil
}

// Port is a parsed EXPOSE port spec such as "80", "8000-8010/udp".
type Port struct {
	Start, End uint16
	// Proto is "tcp" (the default), "udp" or "sctp".
	Proto string
}

// String formats p as in an image config's ExposedPorts ("80/tcp").
func (p Port) String() string {
	if p.Start == p.End {
		return fmt.Sprintf("%d/%s", p.Start, p.Proto)
	}
	return fmt.Sprintf("%d-%d/%s", p.Start, p.End, p.Proto)
}

// ParsePort parses one (expanded) EXPOSE word.
func ParsePort(s string) (Port, error) {
	spec, proto, hasProto := strings.Cut(s, "/")
	p := Port{Proto: "tcp"}
	if hasProto {
		p.Proto = strings.ToLower(proto)
		if p.Proto != "tcp" && p.Proto != "udp" && p.Proto != "sctp" {
			return Port{}, fmt.Errorf("invalid protocol %q in %q: want tcp, udp or sctp", proto, s)
		}
	}
	if strings.Contains(spec, ":") {
		return Port{}, fmt.Errorf("invalid port %q: EXPOSE cannot publish host ports (use docker run -p)", s)
	}
	lo, hi, isRange := strings.Cut(spec, "-")
	start, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return Port{}, fmt.Errorf("invalid port %q: want a number from 0 to 65535, a range like 8000-8010, and an optional /tcp, /udp or /sctp", s)
	}
	end := start
	if isRange {
		end, err = strconv.ParseUint(hi, 10, 16)
		if err != nil || end < start {
			return Port{}, fmt.Errorf("invalid port range %q", s)
		}
	}
	p.Start, p.End = uint16(start), uint16(end)
	return p, nil
}
