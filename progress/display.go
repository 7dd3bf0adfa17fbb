package progress

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// The display modes of `kiln build --progress`.
const (
	ModeAuto    = "auto"
	ModeTTY     = "tty"
	ModePlain   = "plain"
	ModeRawJSON = "rawjson"
	ModeQuiet   = "quiet"
)

// Modes lists the valid display modes.
var Modes = []string{ModeAuto, ModeTTY, ModePlain, ModeRawJSON, ModeQuiet}

// Summary counts what a display saw.
type Summary struct {
	Steps    int
	Cached   int
	Failed   int
	Duration time.Duration
	// Report says where the time went (slowest steps, critical path).
	Report Report
}

// String is the line a build ends with.
func (s Summary) String() string {
	return fmt.Sprintf("%d steps, %d cached, %d ran in %.1fs", s.Steps, s.Cached, s.Steps-s.Cached-s.Failed, s.Duration.Seconds())
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Display renders the events of ch to w in mode until ch is closed or ctx
// ends, and returns what it counted.
func Display(ctx context.Context, mode string, w io.Writer, ch <-chan Event) (Summary, error) {
	if mode == ModeAuto || mode == "" {
		mode = ModePlain
		if IsTerminal(w) {
			mode = ModeTTY
		}
	}
	st := newState()
	var r renderer
	switch mode {
	case ModePlain:
		r = &plain{w: w, st: st}
	case ModeTTY:
		r = &tty{w: w, st: st}
	case ModeRawJSON:
		r = &rawJSON{enc: json.NewEncoder(w)}
	case ModeQuiet:
		r = quiet{}
	default:
		return Summary{}, fmt.Errorf("unknown progress mode %q (valid: %s)", mode, strings.Join(Modes, ", "))
	}
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				r.finish()
				return st.summary(), nil
			}
			st.apply(e)
			r.event(e)
		case <-tick.C:
			r.tick()
		case <-ctx.Done():
			r.finish()
			return st.summary(), context.Cause(ctx)
		}
	}
}

type renderer interface {
	event(Event)
	tick()
	finish()
}

// vertex is the display's view of one vertex.
type vertex struct {
	VertexStatus
	index   int
	logTail []string // last lines of output
	partial string   // unterminated output
}

type state struct {
	start    time.Time
	vertices map[digest.Digest]*vertex
	order    []*vertex
	steps    Collector
	failed   bool // an End with an error came
}

func newState() *state {
	return &state{start: time.Now(), vertices: map[digest.Digest]*vertex{}}
}

func (s *state) vertex(d digest.Digest) *vertex {
	v, ok := s.vertices[d]
	if !ok {
		v = &vertex{index: len(s.order) + 1}
		v.Digest = d
		s.vertices[d] = v
		s.order = append(s.order, v)
	}
	return v
}

func (s *state) apply(e Event) {
	s.steps.Write(e)
	switch {
	case e.End != nil:
		s.failed = s.failed || e.End.Error != ""
	case e.Vertex != nil:
		v := s.vertex(e.Vertex.Digest)
		v.VertexStatus = *e.Vertex
	case e.Log != nil:
		v := s.vertex(e.Log.Vertex)
		text := v.partial + string(e.Log.Data)
		lines := strings.Split(text, "\n")
		v.partial = lines[len(lines)-1]
		v.logTail = append(v.logTail, lines[:len(lines)-1]...)
		if len(v.logTail) > 6 {
			v.logTail = v.logTail[len(v.logTail)-6:]
		}
	}
}

func (s *state) summary() Summary {
	sum := Summary{Duration: time.Since(s.start), Report: s.steps.Report()}
	for _, v := range s.order {
		if v.Name == "" {
			continue
		}
		sum.Steps++
		if v.Cached {
			sum.Cached++
		}
		if v.Error != "" {
			sum.Failed++
		}
	}
	return sum
}

func duration(v *vertex) time.Duration {
	if v.Started == nil {
		return 0
	}
	end := time.Now()
	if v.Completed != nil {
		end = *v.Completed
	}
	return end.Sub(*v.Started)
}

type quiet struct{}

func (quiet) event(Event) {}
func (quiet) tick()       {}
func (quiet) finish()     {}

type rawJSON struct{ enc *json.Encoder }

func (r *rawJSON) event(e Event) {
	if e.End == nil { // the daemon's events only
		_ = r.enc.Encode(e)
	}
}
func (r *rawJSON) tick()   {}
func (r *rawJSON) finish() {}

// plain prints one line per event, like `docker buildx build --progress plain`.
type plain struct {
	w  io.Writer
	st *state
	// printed remembers which states of a vertex were printed.
	printed map[digest.Digest]string
}

func (p *plain) event(e Event) {
	if p.printed == nil {
		p.printed = map[digest.Digest]string{}
	}
	switch {
	case e.Vertex != nil:
		v := p.st.vertices[e.Vertex.Digest]
		if v.Name == "" {
			return
		}
		phase := "started"
		switch {
		case v.Error != "":
			phase = "error"
		case v.Cached:
			phase = "cached"
		case v.Completed != nil:
			phase = "done"
		}
		if p.printed[v.Digest] == phase {
			return
		}
		if p.printed[v.Digest] == "" {
			fmt.Fprintf(p.w, "\n#%d %s\n", v.index, v.Name)
			if v.MissReason != "" && phase != "cached" {
				fmt.Fprintf(p.w, "#%d cache miss: %s\n", v.index, v.MissReason)
			}
		}
		p.printed[v.Digest] = phase
		switch phase {
		case "cached":
			src := ""
			if v.CacheSource != "" && v.CacheSource != "local" {
				src = " (" + v.CacheSource + ")"
			}
			fmt.Fprintf(p.w, "#%d CACHED%s\n", v.index, src)
		case "done":
			extra := ""
			if st, ok := p.st.steps.step(v.Digest); ok && st.Usage != nil {
				extra = " (" + st.Usage.String() + ")"
			}
			fmt.Fprintf(p.w, "#%d DONE %.1fs%s\n", v.index, duration(v).Seconds(), extra)
		case "error":
			fmt.Fprintf(p.w, "#%d ERROR: %s\n", v.index, v.Error)
		}
	case e.Log != nil:
		v := p.st.vertices[e.Log.Vertex]
		var since float64
		if v.Started != nil {
			since = e.Log.Time.Sub(*v.Started).Seconds()
		}
		for _, line := range strings.SplitAfter(string(e.Log.Data), "\n") {
			if line == "" {
				continue
			}
			fmt.Fprintf(p.w, "#%d %.3f %s", v.index, since, line)
			if !strings.HasSuffix(line, "\n") {
				fmt.Fprintln(p.w)
			}
		}
	case e.Warning != nil:
		fmt.Fprintf(p.w, "WARNING: %s\n", e.Warning.Message)
	}
}

func (p *plain) tick()   {}
func (p *plain) finish() {}

// tty redraws a compact live view like buildx: one line per step with its
// timer, CACHED marks, and the last log lines of running steps.
type tty struct {
	w     io.Writer
	st    *state
	lines int // lines drawn last time
	warns []string
}

func (t *tty) event(e Event) {
	if e.Warning != nil {
		t.warns = append(t.warns, e.Warning.Message)
	}
}

func (t *tty) tick()   { t.draw(false) }
func (t *tty) finish() { t.draw(true) }

func (t *tty) draw(final bool) {
	var b strings.Builder
	if t.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", t.lines)
	}
	vs := make([]*vertex, 0, len(t.st.order))
	for _, v := range t.st.order {
		if v.Name != "" && (v.Started != nil || v.Cached) {
			vs = append(vs, v)
		}
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].index < vs[j].index })
	done := 0
	for _, v := range vs {
		if v.Completed != nil || v.Cached {
			done++
		}
	}
	status := "Building"
	if final {
		status = "Built"
		if t.st.failed {
			status = "Build failed"
		}
	}
	n := 0
	line := func(s string) {
		b.WriteString("\x1b[2K")
		b.WriteString(s)
		b.WriteString("\n")
		n++
	}
	line(fmt.Sprintf("[+] %s %.1fs (%d/%d)", status, time.Since(t.st.start).Seconds(), done, len(vs)))
	for _, v := range vs {
		prefix := " => "
		name := v.Name
		switch {
		case v.Error != "":
			prefix = " => ERROR "
		case v.Cached:
			name = "CACHED " + name
		}
		line(fmt.Sprintf("%s%-60s %5.1fs", prefix, trim(name, 60), duration(v).Seconds()))
		if v.Completed == nil && !v.Cached {
			if v.MissReason != "" {
				line(" => => cache miss: " + trim(v.MissReason, 70))
			}
			for _, l := range v.logTail {
				line(" => => # " + trim(l, 70))
			}
		}
		if v.Error != "" {
			for _, l := range v.logTail {
				line(" => => # " + trim(l, 70))
			}
		}
	}
	if final {
		for _, w := range t.warns {
			line("WARNING: " + w)
		}
	}
	// Clear what is left of a taller earlier frame.
	for i := n; i < t.lines; i++ {
		b.WriteString("\x1b[2K\n")
	}
	if t.lines > n {
		fmt.Fprintf(&b, "\x1b[%dA", t.lines-n)
	}
	t.lines = n
	_, _ = io.WriteString(t.w, b.String())
}

func trim(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
