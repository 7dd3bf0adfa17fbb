package remote

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestWritebackFileWritesEverything(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		size, writes int
	}{
		{"empty", 0, 1},
		{"small", 1000, 3},
		{"just under a chunk", writebackChunk - 1, 2},
		{"one chunk", writebackChunk, 1},
		{"three chunks and a bit, odd writes", 3*writebackChunk + 5, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := make([]byte, tc.size)
			r := rand.New(rand.NewPCG(1, uint64(tc.size)))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			f, err := os.Create(filepath.Join(t.TempDir(), "blob"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			w := newWritebackFile(f)
			step := tc.size/tc.writes + 1
			for off := 0; off < len(data); off += step {
				n, err := w.Write(data[off:min(off+step, len(data))])
				if err != nil || n != min(step, len(data)-off) {
					t.Fatalf("write at %d: %d, %v", off, n, err)
				}
			}
			if want := int64(tc.size) / writebackChunk * writebackChunk; w.started != want {
				t.Errorf("handed %d bytes to writeback, want %d", w.started, want)
			}
			got, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("the file holds %d bytes that differ from the %d written", len(got), len(data))
			}
		})
	}
}
