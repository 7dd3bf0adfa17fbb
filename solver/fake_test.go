package solver

import (
	"context"
	"fmt"
	"maps"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/session"
)

// fakeWorker runs graph ops on in-memory filesystems (path → content). It
// counts executions per command and can delay, block or fail them, after
// BuildKit's hand-written scheduler fakes.
type fakeWorker struct {
	mu      sync.Mutex
	results map[string]map[string]string // committed results by id
	nextID  int
	execs   map[string]int // executions per command text
	loads   atomic.Int32
	live    map[string]int // handles not yet released, by id

	running, maxRunning atomic.Int32
	// selfAdmit makes exec steps ask for their admission themselves
	// (ops.Admit) after a preparation of prepare; forgetRelease makes
	// them never release it. inExec counts the steps in Exec at all
	// (preparing or running), maxInExec its peak.
	selfAdmit, forgetRelease bool
	prepare                  time.Duration
	inExec, maxInExec        atomic.Int32
	// started is signalled when a "block" command starts.
	started chan string
	// cancelled records commands whose context ended while running.
	cancelled chan string
	// failGate, if not nil, holds "fail" commands until it is closed.
	failGate chan struct{}
}

func newFakeWorker() *fakeWorker {
	return &fakeWorker{
		results:   map[string]map[string]string{},
		execs:     map[string]int{},
		live:      map[string]int{},
		started:   make(chan string, 16),
		cancelled: make(chan string, 16),
	}
}

type fakeRef struct {
	w     *fakeWorker
	id    string
	files map[string]string
	once  sync.Once
}

func (r *fakeRef) ID() string { return r.id }

func (r *fakeRef) Release(context.Context) error {
	r.once.Do(func() {
		if r.id == "" {
			return
		}
		r.w.mu.Lock()
		r.w.live[r.id]--
		r.w.mu.Unlock()
	})
	return nil
}

func (w *fakeWorker) commit(files map[string]string) *fakeRef {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nextID++
	id := fmt.Sprintf("snap-%d", w.nextID)
	w.results[id] = files
	w.live[id]++
	return &fakeRef{w: w, id: id, files: files}
}

func (w *fakeWorker) Load(_ context.Context, id string) (ops.Ref, error) {
	w.loads.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	files, ok := w.results[id]
	if !ok {
		return nil, errdefs.NotFoundf("result %s", id)
	}
	w.live[id]++
	return &fakeRef{w: w, id: id, files: files}, nil
}

func (w *fakeWorker) remove(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.results, id)
}

func (w *fakeWorker) execCount(cmd string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.execs[cmd]
}

func (w *fakeWorker) leaked() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for id, n := range w.live {
		if n != 0 {
			out = append(out, fmt.Sprintf("%s:%d", id, n))
		}
	}
	sort.Strings(out)
	return out
}

func fileDigest(content string) digest.Digest { return digest.FromString(content) }

func (w *fakeWorker) Checksum(_ context.Context, ref ops.Ref, selectors []string) (ops.Content, error) {
	files := ref.(*fakeRef).files
	c := ops.Content{Files: map[string]digest.Digest{}}
	for p, data := range files {
		if len(selectors) > 0 && !matchAny(selectors, p) {
			continue
		}
		c.Files[p] = fileDigest(data)
	}
	keys := make([]string, 0, len(c.Files))
	for k := range c.Files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, c.Files[k])
	}
	c.Digest = digest.FromString(b.String())
	return c, nil
}

func matchAny(sel []string, p string) bool {
	for _, s := range sel {
		if s == p || strings.HasPrefix(p, strings.TrimSuffix(s, "/")+"/") {
			return true
		}
	}
	return false
}

func (w *fakeWorker) Op(v *graph.Vertex, sess session.Session) (ops.Op, error) {
	return &fakeOp{w: w, v: v, sess: sess}, nil
}

type fakeOp struct {
	w    *fakeWorker
	v    *graph.Vertex
	sess session.Session
}

// ContentKeyed marks local sources.
func (o *fakeOp) ContentKeyed() bool { return o.v.Op.Source != nil && o.v.Op.Source.Local != nil }

func (o *fakeOp) CacheMap(context.Context) (*ops.CacheMap, error) {
	cm := &ops.CacheMap{Digest: o.v.Op.Digest(), UsesExecutor: o.v.Op.Exec != nil, AdmitsItself: o.v.Op.Exec != nil && o.w.selfAdmit}
	if f := o.v.Op.File; f != nil {
		cm.Deps = make([]ops.Dep, len(o.v.Inputs))
		for _, a := range f.Actions {
			if a.Copy != nil {
				cm.Deps[a.Copy.Input].Selectors = append(cm.Deps[a.Copy.Input].Selectors, a.Copy.Src...)
			}
		}
	}
	return cm, nil
}

func (o *fakeOp) Exec(ctx context.Context, inputs []ops.Ref) (ops.Ref, error) {
	op := o.v.Op
	switch {
	case op.Source != nil && op.Source.Local != nil:
		files := o.sess.(*fakeSession).context
		return &fakeRef{w: o.w, files: maps.Clone(files)}, nil
	case op.Source != nil:
		return o.w.commit(map[string]string{"/image": op.Source.Image.Ref}), nil
	case op.Exec != nil:
		cmd := strings.Join(op.Exec.Args, " ")
		o.w.mu.Lock()
		o.w.execs[cmd]++
		o.w.mu.Unlock()
		if o.w.selfAdmit {
			peak(&o.w.maxInExec, o.w.inExec.Add(1))
			defer o.w.inExec.Add(-1)
			time.Sleep(o.w.prepare)
			release, err := ops.Admit(ctx)
			if err != nil {
				return nil, err
			}
			if !o.w.forgetRelease {
				defer release()
			}
		}
		n := o.w.running.Add(1)
		defer o.w.running.Add(-1)
		for {
			m := o.w.maxRunning.Load()
			if n <= m || o.w.maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		switch op.Exec.Args[0] {
		case "fail":
			if o.w.failGate != nil {
				<-o.w.failGate
			}
			return nil, fmt.Errorf("process %q did not complete successfully: exit code: 1", cmd)
		case "sleep":
			d, _ := time.ParseDuration(op.Exec.Args[1])
			select {
			case <-time.After(d):
			case <-ctx.Done():
				o.w.cancelled <- cmd
				return nil, context.Cause(ctx)
			}
		case "block":
			o.w.started <- cmd
			<-ctx.Done()
			o.w.cancelled <- cmd
			return nil, context.Cause(ctx)
		}
		files := map[string]string{}
		if op.Exec.Root >= 0 {
			maps.Copy(files, inputs[op.Exec.Root].(*fakeRef).files)
		}
		files["/out"] = cmd
		return o.w.commit(files), nil
	case op.File != nil:
		files := map[string]string{}
		if op.File.Base >= 0 {
			maps.Copy(files, inputs[op.File.Base].(*fakeRef).files)
		}
		for _, a := range op.File.Actions {
			if a.Copy != nil {
				src := inputs[a.Copy.Input].(*fakeRef).files
				for p, d := range src {
					if matchAny(a.Copy.Src, p) {
						files[a.Copy.Dest+"/"+p] = d
					}
				}
			}
		}
		return o.w.commit(files), nil
	case op.Merge != nil:
		files := map[string]string{}
		for _, in := range inputs {
			maps.Copy(files, in.(*fakeRef).files)
		}
		return o.w.commit(files), nil
	}
	return nil, fmt.Errorf("unsupported op")
}

// fakeSession serves a build context from memory.
type fakeSession struct {
	context map[string]string
}

func (s *fakeSession) ID() string { return "fake" }
func (s *fakeSession) SyncDir(context.Context, string, session.SyncOptions, string) (session.SyncStats, error) {
	return session.SyncStats{}, nil
}
func (s *fakeSession) Secret(context.Context, string) ([]byte, error) {
	return nil, errdefs.ErrNotFound
}
func (s *fakeSession) DialSSH(context.Context, string) (net.Conn, error) {
	return nil, errdefs.ErrNotFound
}
func (s *fakeSession) Credentials(context.Context, string) (session.Credential, bool, error) {
	return session.Credential{}, false, nil
}

// peak raises m to n if n is higher.
func peak(m *atomic.Int32, n int32) {
	for {
		old := m.Load()
		if n <= old || m.CompareAndSwap(old, n) {
			return
		}
	}
}
