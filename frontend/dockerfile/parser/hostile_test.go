package parser

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/core/errdefs"
)

// generous bounds a parse that must finish: it fails the test (instead of
// hanging it) if the parse never ends, and is far above what a linear
// parse needs, so that it never flakes on a loaded machine.
const generous = 2 * time.Minute

// continued returns a RUN instruction continued over n lines, each a
// comment inside the continuation, so the joined line stays short.
func continued(n int) []byte {
	var b strings.Builder
	b.WriteString("FROM a\nRUN echo start \\\n")
	for range n {
		b.WriteString("  # a comment line inside the continuation\n")
	}
	b.WriteString("  end\nRUN after\n")
	return []byte(b.String())
}

func TestParseManyContinuationLines(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	res, err := Parse(ctx, continued(200_000), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Dump(); got != `(from "a")`+"\n"+`(run "echo start   end")`+"\n"+`(run "after")` {
		t.Errorf("dump: %s", got)
	}
	if r := res.Nodes[1].Range; r != (errdefs.Range{Start: 2, End: 200_003}) {
		t.Errorf("range %+v", r)
	}
}

func TestParseJoinedLineLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lines int
		want  string
		rng   errdefs.Range
	}{
		// 200,000 lines of "  word \" join to about 1.4 MB: the limit
		// stops the join long before that, at the line that crosses it.
		{name: "200k continued words", lines: 200_000, want: "Dockerfile:2: instruction greater than max allowed size of 65535 bytes after joining its continuation lines", rng: errdefs.Range{Start: 2, End: 9364}},
		{name: "just under", lines: 9000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			b.WriteString("FROM a\nRUN x \\\n")
			for range tt.lines {
				b.WriteString("  word \\\n")
			}
			b.WriteString("  end\n")
			ctx, cancel := context.WithTimeout(context.Background(), generous)
			defer cancel()
			_, err := Parse(ctx, []byte(b.String()), "Dockerfile")
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			var se *errdefs.SourceError
			if !errors.As(err, &se) || se.Range != tt.rng || !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %#v: want a SourceError for %+v in the invalid-argument class", err, tt.rng)
			}
		})
	}
}

func TestParseCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("the client went away")
	cancel(cause)
	_, err := Parse(ctx, continued(100_000), "Dockerfile")
	if !errors.Is(err, cause) {
		t.Fatalf("got %v, want the cancellation cause", err)
	}
}

// BenchmarkParseContinuations parses a RUN continued over 200,000 lines;
// ns/op grows linearly with the line count.
func BenchmarkParseContinuations(b *testing.B) {
	src := continued(200_000)
	b.SetBytes(int64(len(src)))
	for range b.N {
		if _, err := Parse(context.Background(), src, "Dockerfile"); err != nil {
			b.Fatal(err)
		}
	}
}
