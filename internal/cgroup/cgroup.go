package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mode says how steps are measured.
type Mode int

// The modes Detect can pick.
const (
	// None: no usable cgroup hierarchy; steps are not measured.
	None Mode = iota
	// V1: cgroup v1 controllers (cpuacct, memory), with the v2
	// hierarchy of a hybrid host for pressure when it is mounted.
	V1
	// V2: the unified hierarchy with its controllers.
	V2
)

func (m Mode) String() string {
	switch m {
	case V1:
		return "cgroup v1"
	case V2:
		return "cgroup v2"
	}
	return "none"
}

// runtimeLeaf is the name of the runtime's cgroup below a step's.
const runtimeLeaf = "ctr"

// v2Controllers are the controllers a step's parent enables for its
// children on cgroup v2, when the machine offers them.
var v2Controllers = []string{"cpu", "memory", "io", "pids"}

// Hierarchy is the machine's cgroup layout, as Detect found it.
type Hierarchy struct {
	mode Mode
	// unified is the cgroup2 mount point: /sys/fs/cgroup on a v2 host,
	// /sys/fs/cgroup/unified on a hybrid one, "" without one.
	unified string
	// v1root holds the v1 controller mounts (<v1root>/cpuacct,
	// <v1root>/memory) in V1 mode.
	v1root string
	// mounts are every cgroup mount point: the runtime creates a step's
	// cgroup in each, so each must be cleaned.
	mounts []string
}

// Detect reads /proc/self/mountinfo and picks the mode. It fails only
// when mountinfo cannot be read; a machine without cgroups gives a
// Hierarchy in mode None.
func Detect() (*Hierarchy, error) {
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup mounts: %w", err)
	}
	return fromMounts(infos), nil
}

// fromMounts picks the mode from the cgroup mounts.
func fromMounts(infos []*mountinfo.Info) *Hierarchy {
	h := &Hierarchy{}
	var cpuacct, memory string
	for _, m := range infos {
		h.mounts = append(h.mounts, m.Mountpoint)
		switch m.FSType {
		case "cgroup2":
			// A v2 mount at the conventional place wins over others (a
			// second mount made for some tool).
			if h.unified == "" || m.Mountpoint == "/sys/fs/cgroup" {
				h.unified = m.Mountpoint
			}
		case "cgroup":
			for _, o := range strings.Split(m.VFSOptions, ",") {
				switch o {
				case "cpuacct":
					cpuacct = m.Mountpoint
				case "memory":
					memory = m.Mountpoint
				}
			}
		}
	}
	switch {
	case cpuacct != "" && memory != "":
		// cgroup1's subsystems live at <root>/<name>; with cpu and
		// cpuacct mounted together, <root>/cpuacct is the usual symlink.
		h.mode, h.v1root = V1, filepath.Dir(memory)
	case h.unified != "" && hasControllers(h.unified, "cpu", "memory"):
		h.mode = V2
	}
	return h
}

// hasControllers reports whether the v2 cgroup at dir offers every one
// of names.
func hasControllers(dir string, names ...string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return false
	}
	have := strings.Fields(string(data))
	for _, n := range names {
		if !slices.Contains(have, n) {
			return false
		}
	}
	return true
}

// Mode returns how steps are measured.
func (h *Hierarchy) Mode() Mode { return h.mode }

// Mounts returns every cgroup mount point of the machine.
func (h *Hierarchy) Mounts() []string { return slices.Clone(h.mounts) }

// Unified returns the cgroup2 mount point, "" if there is none.
func (h *Hierarchy) Unified() string { return h.unified }

// cleanRel returns the clean cgroup path of rel, relative to a mount
// ("/kiln/abc"), refusing paths that leave it.
func cleanRel(rel string) (string, error) {
	c := path.Clean("/" + rel)
	if c == "/" || strings.Contains(rel, "..") {
		return "", fmt.Errorf("cgroup path %q: want a path below the root", rel)
	}
	return c, nil
}

// Parent prepares rel (e.g. "/kiln"), the cgroup under which steps get
// theirs, and returns its Group.
func (h *Hierarchy) Parent(rel string) (*Group, error) {
	rel, err := cleanRel(rel)
	if err != nil {
		return nil, err
	}
	return h.group(rel, nil)
}

// group creates the cgroup rel. On cgroup v2, enable are controllers to
// turn on for it in its ancestors (a step's cgroup counts the cpu,
// memory, io and pids its parent offers).
func (h *Hierarchy) group(rel string, enable []string) (*Group, error) {
	g := &Group{h: h, rel: rel}
	var err error
	switch h.mode {
	case None:
		return g, nil
	case V2:
		if g.v2, err = cgroup2.NewManager(h.unified, rel, &cgroup2.Resources{}); err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", rel, err)
		}
		if len(enable) > 0 {
			if err := g.v2.ToggleControllers(enable, cgroup2.Enable); err != nil {
				_ = os.Remove(filepath.Join(h.unified, rel))
				return nil, fmt.Errorf("enable controllers %v for cgroup %s: %w", enable, rel, err)
			}
		}
	case V1:
		if g.v1, err = cgroup1.New(cgroup1.StaticPath(rel), &specs.LinuxResources{}, cgroup1.WithHierarchy(h.v1Subsystems)); err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", rel, err)
		}
		if h.unified != "" {
			if g.v2, err = cgroup2.NewManager(h.unified, rel, &cgroup2.Resources{}); err != nil {
				return nil, fmt.Errorf("create cgroup %s in %s: %w", rel, h.unified, err)
			}
		}
	}
	return g, nil
}

// v1Subsystems are the v1 controllers a step is measured with.
func (h *Hierarchy) v1Subsystems() ([]cgroup1.Subsystem, error) {
	// Only the usage counters are read: not swap, kernel or TCP memory.
	mem := cgroup1.NewMemory(h.v1root, cgroup1.IgnoreModules("memsw", "kmem", "kmem.tcp"))
	return []cgroup1.Subsystem{cgroup1.NewCpuacct(h.v1root), mem}, nil
}

// NewStep creates the cgroup <parent>/<id> of one step. Remove it when
// the step is over.
func (h *Hierarchy) NewStep(parent, id string) (*Step, error) {
	if id == "" || strings.ContainsAny(id, "/.") {
		return nil, fmt.Errorf("step cgroup id %q: want a plain name", id)
	}
	prel, err := cleanRel(parent)
	if err != nil {
		return nil, err
	}
	var enable []string
	if h.mode == V2 {
		// The controllers the parent offers, read once.
		data, _ := os.ReadFile(filepath.Join(h.unified, prel, "cgroup.controllers"))
		have := strings.Fields(string(data))
		for _, c := range v2Controllers {
			if slices.Contains(have, c) {
				enable = append(enable, c)
			}
		}
	}
	g, err := h.group(path.Join(prel, id), enable)
	if err != nil {
		return nil, err
	}
	return &Step{g: g}, nil
}

// Cleanup removes step cgroups left below parent by a daemon that
// stopped without removing them (their containers must be gone). It
// returns the first error after trying them all.
func (h *Hierarchy) Cleanup(parent string) error {
	rel, err := cleanRel(parent)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range h.mounts {
		ents, err := os.ReadDir(filepath.Join(m, rel))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.IsDir() {
				if err := h.removeIn(m, path.Join(rel, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// RemoveParent removes the parent cgroup rel from every hierarchy, once
// no step of it is left. A parent that still has children stays.
func (h *Hierarchy) RemoveParent(rel string) error {
	rel, err := cleanRel(rel)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range h.mounts {
		if err := os.Remove(filepath.Join(m, rel)); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrExist) && !isBusy(err) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", filepath.Join(m, rel), err))
		}
	}
	return errors.Join(errs...)
}

// removeIn removes rel and its runtime leaf from the hierarchy at mount.
func (h *Hierarchy) removeIn(mount, rel string) error {
	for _, p := range []string{path.Join(rel, runtimeLeaf), rel} {
		if err := rmdir(filepath.Join(mount, p)); err != nil {
			return err
		}
	}
	return nil
}

// rmdir removes an empty cgroup, retrying briefly while the kernel still
// counts a process that has just exited.
func rmdir(dir string) error {
	delay := 2 * time.Millisecond
	for i := 0; ; i++ {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if i == 6 || !errors.Is(err, os.ErrExist) && !isBusy(err) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay *= 2
	}
}

// Step is the cgroup of one build step.
type Step struct {
	g *Group
}

// RuntimePath is the cgroup path to give the OCI runtime
// (linux.cgroupsPath): a child of the step's cgroup.
func (s *Step) RuntimePath() string { return path.Join(s.g.rel, runtimeLeaf) }

// UnifiedDir is the step's directory in the v2 hierarchy, "" without
// one. A runtime that does not place containers in the v2 hierarchy of
// a hybrid host (crun, see executor/runc) is started in it instead
// (clone3 CLONE_INTO_CGROUP), so that the step's pressure is still known.
func (s *Step) UnifiedDir() string {
	if s.g.v2 == nil {
		return ""
	}
	return filepath.Join(s.g.h.unified, s.g.rel)
}

// Stat returns the step's usage so far (all of it once its processes
// have exited).
func (s *Step) Stat() (Stats, error) { return s.g.Stat() }

// Remove removes the step's cgroup (and the runtime's, if it is still
// there) from every hierarchy. The step's processes must have exited.
func (s *Step) Remove() error {
	var errs []error
	for _, m := range s.g.h.mounts {
		if err := s.g.h.removeIn(m, s.g.rel); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
