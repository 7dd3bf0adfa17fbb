package memory

import (
	"testing"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/cachetest"
)

func TestConformance(t *testing.T) {
	cachetest.Run(t, func(*testing.T) cache.Store { return New() }, nil)
}
