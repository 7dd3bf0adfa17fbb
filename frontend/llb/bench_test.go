package llb

import (
	"context"
	"fmt"
	"testing"

	bk "github.com/moby/buildkit/client/llb"
)

// BenchmarkConvert converts a definition of 500 execs, each with a cache
// mount and a file op copying from the context: about what a large
// multi-stage Dockerfile makes.
func BenchmarkConvert(b *testing.B) {
	ctx := context.Background()
	st := bk.Image("busybox")
	local := bk.Local("context")
	for i := range 250 {
		st = st.Run(bk.Shlex(fmt.Sprintf("echo %d", i)), bk.AddMount("/cache", bk.Scratch(), bk.AsPersistentCacheDir("c", bk.CacheMountShared))).Root()
		st = st.File(bk.Copy(local, fmt.Sprintf("/f%d", i), "/dst/", &bk.CopyInfo{CreateDestPath: true}))
	}
	def, err := st.Marshal(ctx)
	if err != nil {
		b.Fatal(err)
	}
	pbDef := def.ToPB()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := Convert(ctx, pbDef, Options{})
		if err != nil || res.Root == nil {
			b.Fatal(err)
		}
	}
}
