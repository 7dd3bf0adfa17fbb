package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestLockRoot(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	l, err := LockRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, LockFile))
	if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("lock file holds %q, %v; want this pid", b, err)
	}
	// flock conflicts between open files even in one process.
	_, err = LockRoot(root)
	want := fmt.Sprintf("another kilnd (pid %d) is using root %s", os.Getpid(), root)
	if err == nil || err.Error() != want {
		t.Errorf("second lock: %v, want %q", err, want)
	}
	if !errorsIsPrecondition(err) {
		t.Errorf("second lock error %v is not in the failed-precondition class", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockRoot(root)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

func errorsIsPrecondition(err error) bool {
	return err != nil && errdefsIs(err, errdefs.ErrFailedPrecondition)
}
