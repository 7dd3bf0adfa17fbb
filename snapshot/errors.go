package snapshot

import "github.com/kiln-build/kiln/internal/ctrderr"

// classify marks err with the Kiln class matching its containerd class.
func classify(err error) error { return ctrderr.Classify(err) }
