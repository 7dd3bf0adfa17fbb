package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// BuildKit v0.32.2 on the same kind of machine (2 cores, runc, overlayfs,
// local registry; medians of 5), from the issue.
const (
	bkHelloCold      = 420 * time.Millisecond
	bkHelloNoChange  = 90 * time.Millisecond
	bkParallelCold   = 2880 * time.Millisecond // issue 16's side-by-side run
	bkContextCold    = 5 * time.Second
	bkContextNoChg   = 340 * time.Millisecond
	bkContextOneFile = 2 * time.Second
	bkChainCold      = 2470 * time.Millisecond // issue 16's side-by-side run
	bkChainNoChange  = 110 * time.Millisecond

	bkExportOCICold     = 13400 * time.Millisecond
	bkExportOCINoChange = 2 * time.Second
	bkExportOCIChanged  = 11500 * time.Millisecond
	bkPushNoChange      = 350 * time.Millisecond
	bkPushChanged       = 11600 * time.Millisecond
)

// benchCases are the cases by name; -cases picks them.
var benchCases = map[string]func(e *env, runs int) ([]row, error){
	"hello":    helloCase,
	"parallel": parallelCase,
	"context":  contextCase,
	"chain":    chainCase,
	"export":   exportCase,
	"shared":   sharedCase,
	"cpu":      cpuCase,
	"memory":   memoryCase,
	"buildctl": buildctlCase,
}

// writeStages writes a Dockerfile of n independent stages s1..sn, each
// running run(i) (which writes /out), and a last stage that copies every
// stage's /out.
func writeStages(dir string, n int, run func(i int) string) error {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "FROM busybox AS s%d\nRUN %s\n\n", i, run(i))
	}
	b.WriteString("FROM busybox\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "COPY --from=s%d /out /out%d\n", i, i)
	}
	return writeDockerfile(dir, b.String())
}

func writeDockerfile(dir, content string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(content), 0o644)
}

// coldAndNoChange measures a build on a fresh daemon root each run, then
// repeated builds with nothing changed.
func coldAndNoChange(e *env, runs int, dir string, args ...string) (cold, noChange, coldCPU time.Duration, err error) {
	all := append(append([]string{}, args...), dir)
	cold, err = timeIt(runs, func(int) error { return e.restart() }, func() error { return e.build(all...) })
	if err != nil {
		return 0, 0, 0, err
	}
	coldCPU = e.cpuMedian(runs)
	noChange, err = timeIt(runs, nil, func() error { return e.build(all...) })
	return cold, noChange, coldCPU, err
}

func helloCase(e *env, runs int) ([]row, error) {
	dir := filepath.Join(e.dir, "hello")
	if err := writeDockerfile(dir, "FROM busybox\nRUN echo \"Hello, Kiln!\" > /hello.txt\nCMD [\"cat\",\"/hello.txt\"]\n"); err != nil {
		return nil, err
	}
	cold, noChange, cpu, err := coldAndNoChange(e, runs, dir, "-t", "my-hello-app")
	if err != nil {
		return nil, err
	}
	return []row{
		{name: "hello cold", kiln: cold, cpu: cpu, buildkit: bkHelloCold},
		{name: "hello no-change", kiln: noChange, buildkit: bkHelloNoChange, target: bkHelloNoChange / 2},
	}, nil
}

func parallelCase(e *env, runs int) ([]row, error) {
	dir := filepath.Join(e.dir, "parallel")
	if err := writeStages(dir, 4, func(i int) string {
		return fmt.Sprintf("sleep 2 && dd if=/dev/urandom of=/out bs=1M count=20 2>/dev/null && echo %d", i)
	}); err != nil {
		return nil, err
	}
	cold, err := timeIt(runs, func(int) error { return e.restart() }, func() error { return e.build(dir) })
	if err != nil {
		return nil, err
	}
	return []row{{name: "parallel cold", kiln: cold, cpu: e.cpuMedian(runs), buildkit: bkParallelCold, target: 2500 * time.Millisecond}}, nil
}

// makeContext writes 5,000 small files and a few large ones (~200 MB).
func makeContext(dir string) error {
	for i := 0; i < 5000; i++ {
		p := filepath.Join(dir, "src", fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("file %d\n%s\n", i, strings.Repeat("x", i%200))), 0o644); err != nil {
			return err
		}
	}
	big := make([]byte, 1<<20)
	for i := 0; i < 4; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("big%d.bin", i)))
		if err != nil {
			return err
		}
		for j := 0; j < 50; j++ {
			_, _ = rand.Read(big)
			if _, err := f.Write(big); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

func contextCase(e *env, runs int) ([]row, error) {
	dir := filepath.Join(e.dir, "context")
	if err := makeContext(dir); err != nil {
		return nil, err
	}
	if err := writeDockerfile(dir, "FROM busybox\nCOPY . /src\nRUN find /src | wc -l\n"); err != nil {
		return nil, err
	}
	cold, noChange, _, err := coldAndNoChange(e, runs, dir)
	if err != nil {
		return nil, err
	}
	small := filepath.Join(dir, "src", "d07", "f0007.txt")
	oneFile, err := timeIt(runs, func(i int) error {
		return os.WriteFile(small, []byte(fmt.Sprintf("changed %d %d\n", i, time.Now().UnixNano())), 0o644)
	}, func() error { return e.build(dir) })
	if err != nil {
		return nil, err
	}
	return []row{
		{name: "context cold", kiln: cold, buildkit: bkContextCold},
		{name: "context no-change", kiln: noChange, buildkit: bkContextNoChg, target: bkContextNoChg / 2},
		{name: "context one-file change", kiln: oneFile, buildkit: bkContextOneFile, target: 600 * time.Millisecond},
	}, nil
}

func chainCase(e *env, runs int) ([]row, error) {
	dir := filepath.Join(e.dir, "chain")
	var b strings.Builder
	b.WriteString("FROM busybox\n")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&b, "RUN echo step %d >> /steps\n", i)
	}
	if err := writeDockerfile(dir, b.String()); err != nil {
		return nil, err
	}
	cold, noChange, cpu, err := coldAndNoChange(e, runs, dir)
	if err != nil {
		return nil, err
	}
	return []row{
		{name: "chain cold", kiln: cold, cpu: cpu, buildkit: bkChainCold, target: 1500 * time.Millisecond},
		{name: "chain no-change", kiln: noChange, buildkit: bkChainNoChange, target: bkChainNoChange / 2},
	}, nil
}

// exportCase builds the context case with an OCI tarball output and with a
// push to the local registry: cold, no change, one small file changed.
func exportCase(e *env, runs int) ([]row, error) {
	dir := filepath.Join(e.dir, "export")
	if err := makeContext(dir); err != nil {
		return nil, err
	}
	if err := writeDockerfile(dir, "FROM busybox\nCOPY . /src\nRUN find /src | wc -l\n"); err != nil {
		return nil, err
	}
	tarball := filepath.Join(e.dir, "export.tar")
	oci := []string{"-o", "type=oci,dest=" + tarball, dir}
	small := filepath.Join(dir, "src", "d03", "f0003.txt")
	change := func(i int) error {
		return os.WriteFile(small, []byte(fmt.Sprintf("changed %d %d\n", i, time.Now().UnixNano())), 0o644)
	}
	ociCold, err := timeIt(runs, func(int) error { return e.restart() }, func() error { return e.build(oci...) })
	if err != nil {
		return nil, err
	}
	ociNoChange, err := timeIt(runs, nil, func() error { return e.build(oci...) })
	if err != nil {
		return nil, err
	}
	ociChanged, err := timeIt(runs, change, func() error { return e.build(oci...) })
	if err != nil {
		return nil, err
	}
	push := []string{"-o", "type=registry,name=" + e.registry + "/bench/context:latest", dir}
	if err := e.build(push...); err != nil { // the first push uploads everything
		return nil, err
	}
	pushNoChange, err := timeIt(runs, nil, func() error { return e.build(push...) })
	if err != nil {
		return nil, err
	}
	pushChanged, err := timeIt(runs, change, func() error { return e.build(push...) })
	if err != nil {
		return nil, err
	}
	return []row{
		{name: "export-oci cold", kiln: ociCold, buildkit: bkExportOCICold, target: bkExportOCICold / 2},
		{name: "export-oci no-change", kiln: ociNoChange, buildkit: bkExportOCINoChange, target: bkExportOCINoChange / 2},
		{name: "export-oci one-file change", kiln: ociChanged, buildkit: bkExportOCIChanged, target: bkExportOCIChanged / 2},
		{name: "export-push no-change", kiln: pushNoChange, buildkit: bkPushNoChange, target: bkPushNoChange / 2},
		{name: "export-push one-file change", kiln: pushChanged, buildkit: bkPushChanged, target: bkPushChanged / 2},
	}, nil
}
