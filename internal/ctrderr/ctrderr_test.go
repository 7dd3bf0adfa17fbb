package ctrderr

import (
	"errors"
	"fmt"
	"testing"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestClassify(t *testing.T) {
	for _, c := range classes {
		err := Classify(fmt.Errorf("wrapped: %w", c.ctrd))
		if !errors.Is(err, c.kiln) || !errors.Is(err, c.ctrd) {
			t.Errorf("Classify(%v) lost a class: %v", c.ctrd, err)
		}
	}
	plain := errors.New("plain")
	if Classify(plain) != plain || Classify(nil) != nil {
		t.Errorf("Classify changed an unclassed error or nil")
	}
	if !errdefs.IsNotFound(Classify(cerrdefs.ErrNotFound)) {
		t.Errorf("not found not classified")
	}
}
