package proclog

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// DefaultMax is how much of a child's stderr a Stderr keeps: the last
// bytes, where a failing tool says why.
const DefaultMax = 64 << 10

// Stderr is an io.Writer for a child's standard error that keeps the last
// DefaultMax bytes and counts the rest. It is safe for concurrent use
// (os/exec may copy from more than one goroutine).
type Stderr struct {
	mu      sync.Mutex
	buf     []byte
	dropped int
}

// NewStderr returns an empty Stderr.
func NewStderr() *Stderr { return &Stderr{} }

// Write implements io.Writer; it never fails.
func (s *Stderr) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	if over := len(s.buf) - DefaultMax; over > 0 {
		s.dropped += over
		s.buf = append(s.buf[:0], s.buf[over:]...)
	}
	return len(p), nil
}

// String returns what was kept, after a note of what was not.
func (s *Stderr) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := strings.TrimRight(string(s.buf), "\n")
	if s.dropped > 0 {
		out = "[" + strconv.Itoa(s.dropped) + " earlier bytes not kept]\n" + out
	}
	return out
}

// logfmtMsg finds the msg="..." of a logfmt line such as runc writes
// (time="..." level=error msg="container does not exist").
var logfmtMsg = regexp.MustCompile(`\bmsg="((?:[^"\\]|\\.)*)"`)

// Brief returns one line for an error message: the last non-empty line
// of the stderr, or its msg="..." when it is a logfmt line; "" for none.
func (s *Stderr) Brief() string {
	return brief(s.String())
}

func brief(text string) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	last := ""
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			last = l
			break
		}
	}
	if m := logfmtMsg.FindStringSubmatch(last); m != nil {
		if u, err := strconv.Unquote(`"` + m[1] + `"`); err == nil {
			return u
		}
		return m[1]
	}
	const maxBrief = 512
	if len(last) > maxBrief {
		last = last[:maxBrief] + "…"
	}
	return last
}

// Log writes the collected stderr (if any) as one record: at Warn when the
// process failed (err != nil), at Debug when it did not. filter, if not
// nil, rewrites the text and the command first (to hide credentials).
func (s *Stderr) Log(ctx context.Context, log *slog.Logger, process string, args []string, err error, filter func(string) string) {
	text := s.String()
	if text == "" || log == nil {
		return
	}
	command := strings.Join(args, " ")
	if filter != nil {
		text, command = filter(text), filter(command)
	}
	level := slog.LevelDebug
	attrs := []slog.Attr{slog.String("process", process), slog.String("command", command)}
	if err != nil {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	attrs = append(attrs, slog.String("stderr", text))
	log.LogAttrs(ctx, level, "child process stderr", attrs...)
}
