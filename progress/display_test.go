package progress

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

func events() []Event {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(500 * time.Millisecond)
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	return []Event{
		{Vertex: &VertexStatus{Digest: a, Name: "[1/3] FROM busybox", Started: &t0, Completed: &t0, Cached: true, CacheSource: "local"}},
		{Vertex: &VertexStatus{Digest: b, Name: "[2/3] RUN echo hi", Started: &t0, MissReason: "command changed"}},
		{Log: &Log{Vertex: b, Stream: 1, Data: []byte("hi\nthere"), Time: t0.Add(100 * time.Millisecond)}},
		{Vertex: &VertexStatus{Digest: b, Name: "[2/3] RUN echo hi", Started: &t0, Completed: &t1, MissReason: "command changed"}},
		{Vertex: &VertexStatus{Digest: c, Name: "[3/3] RUN false", Started: &t0, Completed: &t1, Error: "exit code: 1"}},
		{Warning: &Warning{Message: "something odd"}},
	}
}

func run(t *testing.T, mode string) (string, Summary) {
	t.Helper()
	ch := make(chan Event)
	go func() {
		for _, e := range events() {
			ch <- e
		}
		close(ch)
	}()
	var buf bytes.Buffer
	sum, err := Display(context.Background(), mode, &buf, ch)
	if err != nil {
		t.Fatal(err)
	}
	return buf.String(), sum
}

func TestDisplayPlain(t *testing.T) {
	out, sum := run(t, ModePlain)
	want := `
#1 [1/3] FROM busybox
#1 CACHED

#2 [2/3] RUN echo hi
#2 cache miss: command changed
#2 0.100 hi
#2 0.100 there
#2 DONE 0.5s

#3 [3/3] RUN false
#3 ERROR: exit code: 1
WARNING: something odd
`
	if out != want {
		t.Errorf("plain output:\n%s\nwant:\n%s", out, want)
	}
	if sum.Steps != 3 || sum.Cached != 1 || sum.Failed != 1 {
		t.Errorf("summary = %+v", sum)
	}
}

func TestDisplayRawJSON(t *testing.T) {
	out, _ := run(t, ModeRawJSON)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(events()) {
		t.Fatalf("got %d lines, want %d", len(lines), len(events()))
	}
	for _, l := range lines {
		var e Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Errorf("line %q: %v", l, err)
		}
	}
}

func TestDisplayTTYAndQuiet(t *testing.T) {
	out, _ := run(t, ModeTTY)
	for _, want := range []string{"[+] Built", "CACHED [1/3] FROM busybox", "ERROR [3/3] RUN false", "WARNING: something odd"} {
		if !strings.Contains(out, want) {
			t.Errorf("tty output lacks %q:\n%s", want, out)
		}
	}
	if out, _ := run(t, ModeQuiet); out != "" {
		t.Errorf("quiet printed %q", out)
	}
	if _, err := Display(context.Background(), "fancy", &bytes.Buffer{}, nil); err == nil || !strings.Contains(err.Error(), "valid: auto, tty, plain, rawjson, quiet") {
		t.Errorf("unknown mode error = %v", err)
	}
}

// TestDisplayTTYHeader: the last frame's header says how the build ended.
func TestDisplayTTYHeader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		end      *End
		want     string
		unwanted string
	}{
		{"succeeded", &End{}, "[+] Built ", "failed"},
		{"no end event", nil, "[+] Built ", "failed"},
		{"failed", &End{Error: "process \"/bin/sh -c false\" did not complete successfully: exit code: 1"}, "[+] Build failed ", "[+] Built"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := make(chan Event)
			go func() {
				for _, e := range events() {
					ch <- e
				}
				if tc.end != nil {
					ch <- Event{End: tc.end}
				}
				close(ch)
			}()
			var buf bytes.Buffer
			if _, err := Display(context.Background(), ModeTTY, &buf, ch); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			last := out[strings.LastIndex(out, "[+] "):]
			if !strings.HasPrefix(last, tc.want) || strings.Contains(last, tc.unwanted) {
				t.Errorf("last frame:\n%s\nwant it to start with %q", last, tc.want)
			}
		})
	}
	// rawjson passes the daemon's events only.
	ch := make(chan Event, 1)
	ch <- Event{End: &End{Error: "x"}}
	close(ch)
	var buf bytes.Buffer
	if _, err := Display(context.Background(), ModeRawJSON, &buf, ch); err != nil || buf.Len() != 0 {
		t.Errorf("rawjson printed %q, %v for an End event", buf.String(), err)
	}
}
