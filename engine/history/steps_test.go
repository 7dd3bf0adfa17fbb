package history

import (
	"fmt"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/progress"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func vertex(name string, started, completed time.Duration, cached bool, errMsg string) progress.Event {
	s, c := t0.Add(started), t0.Add(completed)
	return progress.Event{Vertex: &progress.VertexStatus{
		Digest: digest.FromString(name), Name: name, Started: &s, Completed: &c, Cached: cached, Error: errMsg,
	}}
}

func logEvent(name string, at time.Duration, stream int, data string) progress.Event {
	return progress.Event{Log: &progress.Log{Vertex: digest.FromString(name), Stream: stream, Data: []byte(data), Time: t0.Add(at)}}
}

func texts(ls []LogLine) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, fmt.Sprintf("%d@%s:%s", l.Stream, l.At, l.Text))
	}
	return out
}

func TestRecorder(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 1000)
	for _, tc := range []struct {
		name    string
		secrets []string
		events  []progress.Event
		check   func(t *testing.T, steps []Step)
	}{{
		name: "lines, streams and timings",
		events: []progress.Event{
			vertex("[1/2] FROM busybox", 0, time.Second, true, ""),
			vertex("[2/2] RUN echo", time.Second, time.Second, false, ""),
			logEvent("[2/2] RUN echo", 1500*time.Millisecond, 1, "hel"),
			logEvent("[2/2] RUN echo", 1600*time.Millisecond, 1, "lo\nwor"),
			logEvent("[2/2] RUN echo", 1700*time.Millisecond, 2, "oops\n"),
			vertex("[2/2] RUN echo", time.Second, 3*time.Second, false, "exit code: 1"),
			{Vertex: &progress.VertexStatus{Digest: digest.FromString("unnamed")}},
		},
		check: func(t *testing.T, steps []Step) {
			if len(steps) != 2 || !steps[0].Cached || steps[1].Error != "exit code: 1" || steps[1].Duration() != 2*time.Second {
				t.Fatalf("steps = %+v", steps)
			}
			got := strings.Join(texts(steps[1].Logs), "|")
			if want := "1@600ms:hello|2@700ms:oops|1@2s:wor"; got != want {
				t.Errorf("logs = %s, want %s", got, want)
			}
		},
	}, {
		name:    "secrets are redacted",
		secrets: []string{"hunter2", ""},
		events: []progress.Event{
			vertex("RUN cat /run/secrets/pw", 0, time.Second, false, "it said hunter2"),
			logEvent("RUN cat /run/secrets/pw", 0, 1, "the password is hunter2!\n"),
		},
		check: func(t *testing.T, steps []Step) {
			if got := steps[0].Logs[0].Text; got != "the password is ****!" {
				t.Errorf("log = %q", got)
			}
			if steps[0].Error != "it said ****" {
				t.Errorf("error = %q", steps[0].Error)
			}
		},
	}, {
		name:    "a secret file's lines are redacted",
		secrets: []string{"hunter2\n", "-----BEGIN KEY-----\r\nQUJDREVGR0g=\nab\n-----END KEY-----\n"},
		events: []progress.Event{
			vertex("RUN cat", 0, time.Second, false, ""),
			logEvent("RUN cat", 0, 1, "pw=hunter2\n-----BEGIN KEY-----\r\nQUJDREVGR0g=\nab\n-----END KEY-----\nlabel ok\n"),
		},
		check: func(t *testing.T, steps []Step) {
			got := strings.Join(texts(steps[0].Logs), "|")
			if want := "1@0s:pw=****|1@0s:****\r|1@0s:****|1@0s:ab|1@0s:****|1@0s:label ok"; got != want {
				t.Errorf("logs = %q, want %q", got, want)
			}
		},
	}, {
		name:    "a secret cut at the line limit is redacted on both sides",
		secrets: []string{"0123456789abcdef"},
		events: []progress.Event{
			vertex("RUN wide", 0, time.Second, false, ""),
			logEvent("RUN wide", 0, 1, strings.Repeat("y", MaxLogLine-6)+"012345"),
			logEvent("RUN wide", 0, 1, "6789ab"),
			logEvent("RUN wide", 0, 1, "cdef tail\n"),
		},
		check: func(t *testing.T, steps []Step) {
			ls := steps[0].Logs
			if len(ls) != 2 || ls[0].Text != strings.Repeat("y", MaxLogLine-6)+"****" {
				t.Fatalf("logs = %q", texts(ls))
			}
			if ls[1].Text != "**** tail" {
				t.Errorf("the line after the cut = %q, want %q", ls[1].Text, "**** tail")
			}
		},
	}, {
		name: "a step keeps its last lines",
		events: func() []progress.Event {
			evs := []progress.Event{vertex("RUN loud", 0, time.Second, false, "")}
			for i := range 100 {
				evs = append(evs, logEvent("RUN loud", 0, 1, fmt.Sprintf("%03d%s\n", i, big)))
			}
			return evs
		}(),
		check: func(t *testing.T, steps []Step) {
			s := steps[0]
			if n := logSize(s.Logs); n > MaxStepLog {
				t.Errorf("kept %d bytes, want at most %d", n, MaxStepLog)
			}
			if s.LogsDropped+len(s.Logs) != 100 || !strings.HasPrefix(s.Logs[len(s.Logs)-1].Text, "099") {
				t.Errorf("dropped %d, kept %d ending %.3s", s.LogsDropped, len(s.Logs), s.Logs[len(s.Logs)-1].Text)
			}
		},
	}, {
		name: "failed steps keep their logs first",
		events: func() []progress.Event {
			var evs []progress.Event
			for i := range 20 {
				name := fmt.Sprintf("RUN step %d", i)
				errMsg := ""
				if i == 19 {
					errMsg = "exit code: 1"
				}
				evs = append(evs, vertex(name, 0, time.Second, false, errMsg))
				for range 40 {
					evs = append(evs, logEvent(name, 0, 1, big+"\n"))
				}
			}
			return evs
		}(),
		check: func(t *testing.T, steps []Step) {
			total := 0
			for _, s := range steps {
				total += logSize(s.Logs)
			}
			if total > MaxBuildLog {
				t.Errorf("kept %d bytes of logs, want at most %d", total, MaxBuildLog)
			}
			if failed := steps[19]; len(failed.Logs) != 32 || failed.LogsDropped != 8 {
				t.Errorf("the failed step kept %d lines (dropped %d)", len(failed.Logs), failed.LogsDropped)
			}
			if last := steps[18]; len(last.Logs) != 0 || last.LogsDropped != 40 {
				t.Errorf("a late successful step kept %d lines (dropped %d); the budget was spent", len(last.Logs), last.LogsDropped)
			}
		},
	}, {
		name: "long lines are cut, steps are bounded",
		events: func() []progress.Event {
			evs := []progress.Event{vertex("RUN wide", 0, time.Second, false, ""), logEvent("RUN wide", 0, 1, strings.Repeat("y", 3*MaxLogLine))}
			for i := range MaxSteps + 5 {
				evs = append(evs, vertex(fmt.Sprint("step ", i), 0, 0, false, ""))
			}
			return evs
		}(),
		check: func(t *testing.T, steps []Step) {
			if len(steps) != MaxSteps {
				t.Errorf("%d steps kept, want %d", len(steps), MaxSteps)
			}
			for _, l := range steps[0].Logs {
				if len(l.Text) > MaxLogLine {
					t.Errorf("a line of %d bytes was kept", len(l.Text))
				}
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecorder()
			for _, s := range tc.secrets {
				r.Secret([]byte(s))
			}
			for _, e := range tc.events {
				r.Write(e)
			}
			steps, _ := r.Steps()
			tc.check(t, steps)
		})
	}
}

// TestTraceIsListedOnRequest: List leaves the trace out unless asked;
// Get returns it.
func TestTraceIsListedOnRequest(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx := t.Context()
	rec := Record{Ref: "r", Status: StatusFailed, Trace: []Step{{Digest: "d", Name: "RUN false", Error: "exit code: 1", Logs: []LogLine{{Stream: 2, Text: "no"}}}}}
	if err := s.Finish(ctx, rec); err != nil {
		t.Fatal(err)
	}
	recs, err := s.List(ctx, Filter{})
	if err != nil || len(recs) != 1 || recs[0].Trace != nil {
		t.Errorf("List = %+v, %v; want the record without its trace", recs, err)
	}
	got, err := s.Get(ctx, "r")
	if err != nil || len(got.Trace) != 1 || got.Trace[0].Logs[0].Text != "no" {
		t.Errorf("Get = %+v, %v; want the trace", got, err)
	}
}
