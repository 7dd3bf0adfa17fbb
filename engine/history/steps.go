package history

import (
	"bytes"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/progress"
)

// The bounds of what a record keeps of a build's steps: the history holds
// Limit records, so each stays small whatever the build printed.
const (
	// MaxSteps is how many steps a record keeps (the first ones).
	MaxSteps = 1000
	// MaxStepLog is how many bytes of log lines a step keeps (its last
	// lines).
	MaxStepLog = 32 << 10
	// MaxBuildLog is how many bytes of log lines a record keeps in all:
	// failed steps keep theirs first, then the others in order.
	MaxBuildLog = 256 << 10
	// MaxLogLine is the longest log line kept; longer ones are cut.
	MaxLogLine = 4 << 10
)

// Redacted replaces secret values in what the history keeps.
const Redacted = "****"

// Step is one step (vertex) of a build as the history keeps it.
type Step struct {
	Digest      string    `json:"digest"`
	Name        string    `json:"name"`
	Started     time.Time `json:"started,omitzero"`
	Completed   time.Time `json:"completed,omitzero"`
	Cached      bool      `json:"cached,omitempty"`
	CacheSource string    `json:"cacheSource,omitempty"`
	Error       string    `json:"error,omitempty"`
	Location    string    `json:"location,omitempty"`
	// Logs are the step's last log lines; LogsDropped counts the lines
	// before them that were not kept.
	Logs        []LogLine `json:"logs,omitempty"`
	LogsDropped int       `json:"logsDropped,omitempty"`
	// Usage is what the step's container used (steps that ran one);
	// Critical marks a step on the build's critical path.
	Usage    *progress.Usage `json:"usage,omitempty"`
	Critical bool            `json:"critical,omitempty"`
}

// Duration is how long the step ran (0 when it did not start or end).
func (s Step) Duration() time.Duration {
	if s.Started.IsZero() || s.Completed.Before(s.Started) {
		return 0
	}
	return s.Completed.Sub(s.Started)
}

// LogLine is one line a step printed, without its newline.
type LogLine struct {
	// At is when it was printed, from the step's start.
	At     time.Duration `json:"at"`
	Stream int           `json:"stream"` // 1 stdout, 2 stderr
	Text   string        `json:"text"`

	// cutEnd: the line was cut at MaxLogLine; cutStart: it is what
	// followed a cut (a secret may straddle either edge).
	cutEnd, cutStart bool
}

func logSize(ls []LogLine) int {
	n := 0
	for _, l := range ls {
		n += len(l.Text) + 1
	}
	return n
}

// Recorder collects a build's steps from its progress events, for its
// history record. It is a progress.Writer, safe for concurrent use; it
// keeps at most MaxSteps steps and MaxStepLog bytes of lines per step as
// the build runs.
type Recorder struct {
	mu      sync.Mutex
	steps   map[digest.Digest]*stepLog
	order   []*stepLog
	secrets [][]byte
}

type stepLog struct {
	Step
	inputs  []digest.Digest // for the critical path
	size    int
	partial [3][]byte // unterminated output per stream
	cut     [3]bool   // the stream's next line follows a cut
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{steps: map[digest.Digest]*stepLog{}}
}

// Secret makes the recorder replace value with Redacted in the logs and
// errors it keeps (the build fetched it from the client).
func (r *Recorder) Secret(value []byte) {
	if len(value) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.secrets {
		if bytes.Equal(s, value) {
			return
		}
	}
	r.secrets = append(r.secrets, bytes.Clone(value))
}

// Write records e.
func (r *Recorder) Write(e progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case e.Vertex != nil:
		s := r.step(e.Vertex.Digest)
		if s == nil {
			return
		}
		v := e.Vertex
		s.Name, s.Cached, s.CacheSource, s.Error, s.Location = v.Name, v.Cached, v.CacheSource, v.Error, v.Location
		if v.Started != nil {
			s.Started = *v.Started
		}
		if v.Completed != nil {
			s.Completed = *v.Completed
		}
		if len(v.Inputs) > 0 {
			s.inputs = v.Inputs
		}
	case e.Usage != nil:
		if s := r.step(e.Usage.Vertex); s != nil {
			u := *e.Usage
			s.Usage = &u
		}
	case e.Log != nil:
		s := r.step(e.Log.Vertex)
		if s == nil || e.Log.Stream < 1 || e.Log.Stream > 2 {
			return
		}
		data := append(s.partial[e.Log.Stream], e.Log.Data...)
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			s.add(e.Log.Time, e.Log.Stream, data[:i])
			data = data[i+1:]
		}
		if len(data) > MaxLogLine {
			s.add(e.Log.Time, e.Log.Stream, data)
			s.cut[e.Log.Stream] = true
			data = nil
		}
		s.partial[e.Log.Stream] = bytes.Clone(data)
	}
}

// step returns the step d, made if there is room.
func (r *Recorder) step(d digest.Digest) *stepLog {
	s, ok := r.steps[d]
	if !ok {
		if len(r.order) >= MaxSteps {
			return nil
		}
		s = &stepLog{Step: Step{Digest: d.String()}}
		r.steps[d] = s
		r.order = append(r.order, s)
	}
	return s
}

// add keeps one line, dropping the oldest ones beyond MaxStepLog.
func (s *stepLog) add(t time.Time, stream int, line []byte) {
	l := LogLine{Stream: stream, cutStart: s.cut[stream]}
	s.cut[stream] = false
	if len(line) > MaxLogLine {
		line, l.cutEnd = line[:MaxLogLine], true
	}
	if !s.Started.IsZero() && t.After(s.Started) {
		l.At = t.Sub(s.Started)
	}
	l.Text = string(line)
	s.Logs = append(s.Logs, l)
	s.size += len(line) + 1
	drop := 0
	for s.size > MaxStepLog && drop < len(s.Logs)-1 {
		s.size -= len(s.Logs[drop].Text) + 1
		drop++
	}
	if drop > 0 {
		s.Logs = slices.Delete(s.Logs, 0, drop)
		s.LogsDropped += drop
	}
}

// Steps returns the named steps recorded, in the order they first
// reported, with the secrets redacted and at most MaxBuildLog bytes of
// log lines (failed steps keep theirs first), and how long the critical
// path took: the chain of dependent steps, marked Critical, whose
// durations add up to the most.
func (r *Recorder) Steps() ([]Step, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Step
	for _, s := range r.order {
		if s.Name == "" {
			continue
		}
		st := s.Step
		st.Logs = slices.Clone(st.Logs)
		for i, p := range s.partial {
			if len(p) > 0 {
				st.Logs = append(st.Logs, LogLine{At: st.Duration(), Stream: i, Text: string(p), cutStart: s.cut[i]})
			}
		}
		for i, l := range st.Logs {
			st.Logs[i].Text = r.redactLine(l)
		}
		st.Error = r.redact(st.Error)
		out = append(out, st)
	}
	// The log budget goes to failed steps first, then in order.
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return out[idx[a]].Error != "" && out[idx[b]].Error == "" })
	budget := MaxBuildLog
	for _, i := range idx {
		ls := out[i].Logs
		keep := len(ls)
		for n := logSize(ls); n > budget && keep > 0; keep-- {
			n -= len(ls[len(ls)-keep].Text) + 1
		}
		out[i].LogsDropped += len(ls) - keep
		out[i].Logs = ls[len(ls)-keep:]
		if len(out[i].Logs) == 0 {
			out[i].Logs = nil
		}
		budget -= logSize(out[i].Logs)
	}
	return out, r.critical(out)
}

// critical marks the steps on the critical path (progress.Analyze) and
// returns its duration.
func (r *Recorder) critical(steps []Step) time.Duration {
	ps := make([]progress.Step, len(steps))
	for i, s := range steps {
		d := digest.Digest(s.Digest)
		ps[i] = progress.Step{Digest: d, Name: s.Name, Inputs: r.steps[d].inputs, Duration: s.Duration(), Cached: s.Cached, Failed: s.Error != "", Usage: s.Usage}
	}
	rep := progress.Analyze(ps)
	on := map[string]bool{}
	for _, s := range rep.CriticalPath {
		on[s.Digest.String()] = true
	}
	for i := range steps {
		steps[i].Critical = on[steps[i].Digest]
	}
	return rep.Critical
}

// Redact replaces the secrets in s. It is for the build's error.
func (r *Recorder) Redact(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.redact(s)
}

func (r *Recorder) redact(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, string(sec), Redacted)
		for _, piece := range secretLines(sec) {
			s = strings.ReplaceAll(s, piece, Redacted)
		}
	}
	return s
}

// minSecretPiece is the shortest part of a secret redacted on its own: a
// line of a multi-line secret, or the part of one on either side of a
// cut line's edge. Shorter parts would redact ordinary text.
const minSecretPiece = 4

// secretLines are the lines of a secret, without their line ends: a step
// prints a secret file (which usually ends with a newline, and a key file
// has several lines) as lines, each of which must be redacted.
func secretLines(sec []byte) []string {
	v := strings.TrimRight(string(sec), "\r\n")
	if v != "" && !strings.Contains(v, "\n") {
		return []string{v} // one line: redacted whatever its length
	}
	var out []string
	for _, l := range strings.Split(v, "\n") {
		l = strings.TrimRight(l, "\r")
		if len(l) >= minSecretPiece {
			out = append(out, l)
		}
	}
	return out
}

// redactLine redacts a log line; a line cut at MaxLogLine also loses a
// secret's start at its end, and the line after a cut a secret's end at
// its start.
func (r *Recorder) redactLine(l LogLine) string {
	s := r.redact(l.Text)
	for _, sec := range r.secrets {
		for _, piece := range append(secretLines(sec), string(sec)) {
			for n := len(piece) - 1; n >= minSecretPiece; n-- {
				if l.cutEnd && strings.HasSuffix(s, piece[:n]) {
					s = s[:len(s)-n] + Redacted
					break
				}
			}
			for n := len(piece) - 1; n >= minSecretPiece; n-- {
				if l.cutStart && strings.HasPrefix(s, piece[len(piece)-n:]) {
					s = Redacted + s[n:]
					break
				}
			}
		}
	}
	return s
}
