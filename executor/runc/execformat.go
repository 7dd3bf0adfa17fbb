package runc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	goruntime "runtime"
	"strings"
	"sync"

	"github.com/kiln-build/kiln/executor"
	"github.com/kiln-build/kiln/internal/binfmt"
)

// defaultPath is where a program without a "/" is looked for when the
// process's environment has no PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// execFormat is how the kernel's ENOEXEC reads.
const execFormat = "exec format error"

// tailWriter passes writes on to w (if any) and keeps the last bytes.
type tailWriter struct {
	w    io.Writer
	mu   sync.Mutex
	tail []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.tail = append(t.tail, p...)
	if over := len(t.tail) - 512; over > 0 {
		t.tail = append(t.tail[:0], t.tail[over:]...)
	}
	t.mu.Unlock()
	if t.w == nil {
		return len(p), nil
	}
	return t.w.Write(p)
}

func (t *tailWriter) contains(s string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Contains(string(t.tail), s)
}

// explainExecFormat adds to the error of a step that failed with "exec
// format error" what its program is and why the host cannot run it (an
// emulator for its platform is missing, or its interpreter is), reading
// the program's header inside rootfs. A native program (the error came
// from something it ran) leaves err as it is.
func explainExecFormat(err error, rootfs string, p executor.Process, binfmtDir string) error {
	if err == nil || len(p.Args) == 0 {
		return err
	}
	root, rerr := os.OpenRoot(rootfs)
	if rerr != nil {
		return err
	}
	defer root.Close()
	prog, hdr := findProgram(root, p.Args[0], p.Env)
	if prog == "" {
		return err
	}
	if strings.HasPrefix(string(hdr), "#!") {
		line, _, _ := strings.Cut(string(hdr[2:]), "\n")
		if f := strings.Fields(line); len(f) > 0 {
			if interp, ihdr := findProgram(root, f[0], nil); interp != "" {
				prog, hdr = interp+" (the interpreter of "+prog+")", ihdr
			}
		}
	}
	platform, machine, isELF := binfmt.ELFPlatform(hdr)
	if isELF && platform == "linux/"+goruntime.GOARCH {
		return err // the program runs here; something it ran did not
	}
	if !strings.Contains(err.Error(), execFormat) {
		// runc said it on the step's stderr only: say it in the error.
		err = fmt.Errorf("%w: %s", err, execFormat)
	}
	if !isELF {
		return fmt.Errorf("%w: %s is neither an ELF program nor a script starting with #!", err, prog)
	}
	entries, _ := binfmt.Read(binfmtDir)
	for _, e := range entries {
		if e.Enabled && e.Matches(hdr) {
			return fmt.Errorf("%w: %s is %s program; the binfmt_misc entry %s should run it with %s, which failed: check that the interpreter exists on the daemon's host", err, prog, orMachine(platform, machine), e.Name, e.Interpreter)
		}
	}
	return fmt.Errorf("%w: %s is %s program and no binfmt_misc emulator for it is enabled on the daemon's host (kiln info lists the emulated platforms); %s", err, prog, orMachine(platform, machine), binfmt.InstallHint)
}

// orMachine names a program's platform with its article: "a linux/arm64",
// or "an ELF machine 50" when it has no OCI name.
func orMachine(platform string, machine int) string {
	if platform != "" {
		return "a " + platform
	}
	return fmt.Sprintf("an ELF machine %d", machine)
}

// findProgram resolves name as execve would (a name without "/" through
// PATH from env) inside root, and returns its path and first bytes.
func findProgram(root *os.Root, name string, env []string) (string, []byte) {
	candidates := []string{name}
	if !strings.Contains(name, "/") {
		dirs := defaultPath
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				dirs = v
			}
		}
		candidates = nil
		for _, d := range strings.Split(dirs, ":") {
			if path.IsAbs(d) {
				candidates = append(candidates, path.Join(d, name))
			}
		}
	}
	for _, c := range candidates {
		if !path.IsAbs(c) {
			continue
		}
		f, err := root.Open(strings.TrimPrefix(path.Clean(c), "/"))
		if err != nil {
			continue
		}
		hdr := make([]byte, 128)
		n, err := io.ReadFull(f, hdr)
		f.Close()
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			continue
		}
		return c, hdr[:n]
	}
	return "", nil
}
