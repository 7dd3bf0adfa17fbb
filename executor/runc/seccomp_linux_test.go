package runc

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRunnableArchitectures(t *testing.T) {
	in := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	got := runnableArchitectures(in)
	want := in
	if !kernelHasX32() {
		want = []specs.Arch{specs.ArchX86_64, specs.ArchX86}
	}
	if !slices.Equal(got, want) {
		t.Errorf("runnableArchitectures(%v) = %v, want %v (kernel x32: %v)", in, got, want, kernelHasX32())
	}
	if len(in) != 3 {
		t.Errorf("the input was modified: %v", in)
	}
}
