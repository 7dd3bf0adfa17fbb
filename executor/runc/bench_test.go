package runc

import (
	"context"
	"testing"

	"github.com/kiln-build/kiln/executor"
)

// BenchmarkRunTrue measures the per-container overhead of Run: bundle,
// overlay rootfs mount, /etc files, spec, the runtime's create/start/wait
// and the cleanup, around a process that does nothing.
func BenchmarkRunTrue(b *testing.B) {
	requireRoot(b)
	lower := busyboxLower(b)
	for _, rt := range runtimes(b) {
		b.Run(rt, func(b *testing.B) {
			e := newTestExecutor(b, rt)
			for b.Loop() {
				b.StopTimer()
				root, _ := overlayRoot(b, lower)
				b.StartTimer()
				if err := e.Run(context.Background(), root, nil, executor.Process{Args: []string{"/bin/true"}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
