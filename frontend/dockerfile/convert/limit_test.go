package convert

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
	"github.com/kiln-build/kiln/frontend/dockerfile/shell"
)

// bomb is the Dockerfile of the issue: each ARG repeats the one before it
// four times, so a few hundred bytes ask for gigabytes.
func bomb(levels int, stage bool) string {
	var b strings.Builder
	if stage {
		b.WriteString("FROM scratch\n")
	}
	b.WriteString("ARG a0=0123456789\n")
	for i := 1; i <= levels; i++ {
		p := "${a" + itoa(i-1) + "}"
		b.WriteString("ARG a" + itoa(i) + "=" + p + p + p + p + "\n")
	}
	if !stage {
		b.WriteString("FROM scratch\n")
	}
	b.WriteString("LABEL x=$a" + itoa(levels) + "\n")
	return b.String()
}

func TestExpansionBombs(t *testing.T) {
	t.Parallel()
	half := strings.Repeat("h", shell.MaxExpansion/2)
	tests := []struct {
		name string
		src  string
		args map[string]string
		want string // error prefix; "" means the build converts
	}{
		{name: "global ARG chain", src: bomb(11, false), want: "Dockerfile:10: ARG a9: failed to process"},
		{name: "stage ARG chain", src: bomb(11, true), want: "Dockerfile:11: ARG a9: failed to process"},
		{name: "chain under the limit", src: bomb(7, true)},
		{name: "ARG instruction", src: "FROM scratch\nARG H\nARG a=$H b=$H c=$H\n", args: map[string]string{"H": half},
			want: "Dockerfile:3: ARG c: variable expansion is too large: variables add more than 1 MiB"},
		{name: "LABEL instruction", src: "FROM scratch\nARG H\nLABEL a=$H b=$H c=$H\n", args: map[string]string{"H": half},
			want: "Dockerfile:3: "},
		{name: "ENV word", src: "FROM scratch\nARG H\nENV a=$H$H$H\n", args: map[string]string{"H": half},
			want: "Dockerfile:3: "},
		{name: "FROM", src: "ARG H\nFROM scratch$H$H$H\n", args: map[string]string{"H": half},
			want: "Dockerfile:2: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := convertErr(tt.src, amd64, func(r *frontend.Request) { r.BuildArgs = tt.args })
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want prefix %q", err, tt.want)
			}
			if !errors.Is(err, shell.ErrExpansionTooLarge) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %v: want ErrExpansionTooLarge in the invalid-argument class", err)
			}
		})
	}
}

// TestExpansionBombMemory converts the 11-level ARG chain and
// measures what the conversion allocated: a small multiple of the limit.
func TestExpansionBombMemory(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := convertErr(bomb(11, false), amd64)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, shell.ErrExpansionTooLarge) {
		t.Fatalf("got %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("converting allocated %d MiB", alloc>>20)
	}
}

// TestExecDataLimit: alternating ENV and RUN lines make every RUN copy a
// growing environment; the conversion stops at the limit.
func TestExecDataLimit(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("FROM scratch\n")
	for i := range 200 {
		b.WriteString("ENV V" + itoa(i) + "=" + strings.Repeat("v", 1000) + "\nRUN true\n")
	}
	df, err := instructions.Parse(context.Background(), []byte(b.String()), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(df, newRequest())
	if err != nil {
		t.Fatal(err)
	}
	c.maxExecData = 1 << 20 // the 200 steps hold about 20 MB
	_, _, err = c.Convert(context.Background(), amd64)
	// The RUN after the k-th ENV holds k variables of about 1 KB (and
	// PATH): the total passes 1 MiB at k = 46, the RUN on line 1+2*46.
	if err == nil || !strings.HasPrefix(err.Error(), "Dockerfile:93: RUN: the RUN steps up to here hold more than 1 MiB") || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("got %v", err)
	}
	c.maxExecData = 0 // MaxExecData
	if _, _, err := c.Convert(context.Background(), amd64); err != nil {
		t.Fatalf("under the default limit: %v", err)
	}
}
