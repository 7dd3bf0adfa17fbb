package testutil

import (
	"errors"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/core/errdefs"
)

// HostPlatform is linux on the architecture the tests run on.
func HostPlatform() v1.Platform { return v1.Platform{OS: "linux", Architecture: hostArch()} }

// busyboxImages memoizes fixture images per test binary: building one reads
// and gzips about 2 MB, and images are immutable, so tests share them. This
// is the one piece of package state, and it lives only in test helpers.
var busyboxImages sync.Map // platform string → *busyboxResult

type busyboxResult struct {
	once sync.Once
	img  v1.Image
	err  error
}

// BusyboxImage returns the busybox fixture image (see NewBusyboxImage) for
// platform, using BusyboxBinary to find the binary. The test is skipped with
// the install instructions when there is no binary for that architecture.
func BusyboxImage(t testing.TB, platform v1.Platform) v1.Image {
	t.Helper()
	if platform.OS == "" {
		platform.OS = "linux"
	}
	v, _ := busyboxImages.LoadOrStore(platform.String(), &busyboxResult{})
	r := v.(*busyboxResult)
	r.once.Do(func() {
		bin, err := BusyboxBinary(platform.Architecture)
		if err != nil {
			r.err = err
			return
		}
		r.img, r.err = NewBusyboxImage(bin, platform)
	})
	skipOrFatal(t, r.err)
	return r.img
}

// BusyboxIndex returns an OCI index of busybox fixture images for the given
// platforms (linux/amd64 and linux/arm64 when none are given). The test is
// skipped when a binary is missing, with the steps that fetch it.
func BusyboxIndex(t testing.TB, platforms ...v1.Platform) v1.ImageIndex {
	t.Helper()
	if len(platforms) == 0 {
		platforms = []v1.Platform{
			{OS: "linux", Architecture: "amd64"},
			{OS: "linux", Architecture: "arm64", Variant: "v8"},
		}
	}
	imgs := make([]v1.Image, len(platforms))
	for i, p := range platforms {
		imgs[i] = BusyboxImage(t, p)
	}
	return indexOf(imgs, platforms)
}

func skipOrFatal(t testing.TB, err error) {
	t.Helper()
	switch {
	case err == nil:
	case errors.Is(err, errdefs.ErrNotFound):
		t.Skipf("skipping: %v", err)
	default:
		t.Fatal(err)
	}
}
