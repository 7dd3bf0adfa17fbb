package iox

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

func TestDigestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := NewDigestWriter(&buf)
	for _, s := range []string{"hello, ", "kiln"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if w.Digest() != digest.FromString("hello, kiln") || w.Size() != 11 || buf.String() != "hello, kiln" {
		t.Errorf("digest %s size %d data %q", w.Digest(), w.Size(), buf.String())
	}
}

func TestContextStopsCopies(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	r := ContextReader(ctx, strings.NewReader("abc"))
	w := ContextWriter(ctx, &bytes.Buffer{})
	b := make([]byte, 1)
	if _, err := r.Read(b); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	cancel(stop)
	if _, err := r.Read(b); !errors.Is(err, stop) {
		t.Errorf("read after cancel = %v", err)
	}
	if _, err := w.Write(b); !errors.Is(err, stop) {
		t.Errorf("write after cancel = %v", err)
	}
}
