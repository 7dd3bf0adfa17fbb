package images

import "testing"

func TestCompressionOf(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"\x1f\x8b\x08\x00rest":       "gzip",
		"\x28\xb5\x2f\xfdrest":       "zstd",
		"BZh91AY":                    "bzip2",
		"\xfd7zXZ\x00rest":           "xz",
		"etc/passwd\x00\x00\x00\x00": "",
		"":                           "",
	}
	for in, want := range tests {
		if got := compressionOf([]byte(in)); got != want {
			t.Errorf("compressionOf(%q) = %q, want %q", in, got, want)
		}
	}
}
