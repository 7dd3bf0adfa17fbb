package remote

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/registry"
	"github.com/kiln-build/kiln/session"
)

// Deps are what a build's cache backends work with. The engine fills them
// for each build.
type Deps struct {
	Importer *Importer
	Layers   *layer.Maker
	// Local is the daemon's content store (LocalBlobs).
	Local BlobStore
	// Resolver reaches registries with the build's credentials.
	Resolver *registry.Resolver
	// Session is the build's client (type=local reads and writes the
	// client's directories through it).
	Session session.Session
	// Platform picks the image of a multi-platform index (inline cache).
	Platform ocispec.Platform
	// Writer identifies this daemon in the records it writes.
	Writer string
	Logger *slog.Logger
	// TempDir is a daemon directory for temporary copies (type=local
	// reads the client's files into it).
	TempDir string
	// Output opens the client-side stream of the --cache-to value being
	// made (type=local writes its layout there as a tar stream); nil when
	// the client receives none.
	Output func() (io.WriteCloser, error)
	// Index is the position of the --cache-from or --cache-to value
	// being made among the build's values of its flag (type=local names
	// the client's directory by it).
	Index int
}

// writerIDFile holds a daemon's writer id in its root.
const writerIDFile = "cache-writer-id"

// WriterID returns the writer id of the daemon on root, making one (random,
// 16 hex digits) the first time. It identifies the daemon's records in
// shared caches and nothing else.
func WriterID(root string) (string, error) {
	p := filepath.Join(root, writerIDFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if id := strings.TrimSpace(string(b)); validWriter(id) {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read cache writer id: %w", err)
	}
	id := randomHex()
	if err := os.MkdirAll(root, 0o711); err != nil {
		return "", fmt.Errorf("cache writer id: %w", err)
	}
	if err := writeFileAtomic(p, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("cache writer id: %w", err)
	}
	return id, nil
}

func validWriter(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
