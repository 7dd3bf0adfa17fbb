// Command bench measures Kiln end to end, as `make bench` runs it: it
// builds kilnd and kiln, starts a local registry holding the busybox base
// image and a kilnd on a temporary root (docker.io mirrored to the local
// registry, nothing from the internet), runs each case several times with
// the kiln client and prints the median wall times and the daemon's memory
// next to BuildKit v0.32.2's figures on the same kind of machine.
//
// The buildctl case runs BuildKit's client (bin/tools/buildctl, which
// hack/bench.sh builds) beside kiln build on the same daemon, and on
// BuildKit's own daemon (bin/tools/buildkitd, also built there) in the
// warm rows.
//
//	go run ./hack/bench [-runs 5] [-cases hello,parallel,context,chain,buildctl]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	runs := flag.Int("runs", 5, "runs per measurement (the median is reported)")
	cases := flag.String("cases", "hello,parallel,context,chain,export,shared,cpu,memory,buildctl", "comma-separated cases to run")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	showProgress := flag.Bool("progress", false, "show each build's plain progress on stderr (times include printing it)")
	memFraction := flag.Float64("memory-fraction", 0.4, "the memory case: the share of the machine's memory each of its 4 steps allocates")
	worker := flag.String("worker", "", "extra [worker.oci] keys for every kilnd, e.g. 'max-parallelism = 4' (the cpu case sets its own)")
	debugAddr := flag.String("debug-address", "", "kilnd's [debug] address (metrics and pprof while the cases run), e.g. 127.0.0.1:6060")
	flag.Parse()
	if err := run(*runs, strings.Split(*cases, ","), *keep, *showProgress, *debugAddr, *memFraction, *worker); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// row is one line of the result table.
type row struct {
	name     string
	kiln     time.Duration
	buildkit time.Duration
	target   time.Duration // 0: no target
	note     string
	// cpu is the median CPU time kilnd, the runtime and the containers
	// used per build (0: not measured): what the wall time would be on
	// an idle machine for a build that runs one step at a time.
	cpu time.Duration
}

func run(runs int, cases []string, keep, showProgress bool, debugAddr string, memFraction float64, worker string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the benchmarks run containers: run them as root")
	}
	dir, err := os.MkdirTemp("", "kiln-bench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	env, err := setup(dir, debugAddr)
	if err != nil {
		return err
	}
	defer env.stop()
	env.progress = showProgress
	env.memoryFraction = memFraction
	env.workerConfig = strings.ReplaceAll(worker, ";", "\n")
	if env.workerConfig != "" {
		env.workerConfig += "\n"
	}

	idle, err := env.rss()
	if err != nil {
		return err
	}
	var rows []row
	for _, c := range cases {
		fn, ok := benchCases[c]
		if !ok {
			return fmt.Errorf("unknown case %q", c)
		}
		r, err := fn(env, runs)
		if err != nil {
			return fmt.Errorf("case %s: %w", c, err)
		}
		rows = append(rows, r...)
	}
	peak, err := env.peakRSS()
	if err != nil {
		return err
	}
	printTable(rows, idle, peak)
	if worker != "" {
		fmt.Printf("\nkilnd ran with [worker.oci] %s (BuildKit's measurement used its default, no limit);\n", worker)
	} else {
		fmt.Println("\nkilnd ran with its [worker.oci] defaults (steps start by measured pressure; BuildKit's measurement used its default, no limit);")
	}
	fmt.Println("only hello exports an image (-t); the other cases keep their result in the build cache, as BuildKit's did.")
	return nil
}

func printTable(rows []row, idle, peak int64) {
	fmt.Printf("\n%-28s %10s %10s %10s %10s  %s\n", "case (median)", "kiln", "kiln CPU", "BuildKit", "target", "")
	fmt.Println(strings.Repeat("-", 83))
	for _, r := range rows {
		target, verdict := "-", ""
		if r.target > 0 {
			target = secs(r.target)
			verdict = "ok"
			if r.kiln > r.target {
				verdict = "MISSED"
			}
		}
		bk := "-"
		if r.buildkit > 0 {
			bk = secs(r.buildkit)
		}
		cpu := "-"
		if r.cpu > 0 {
			cpu = secs(r.cpu)
		}
		fmt.Printf("%-28s %10s %10s %10s %10s  %s %s\n", r.name, secs(r.kiln), cpu, bk, target, verdict, r.note)
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	idleVerdict := "ok"
	if idle > 25<<20 {
		idleVerdict = "MISSED"
	}
	fmt.Printf("%-28s %10s %10s %10s %10s  %s\n", "kilnd RSS idle", mib(idle), "", "46 MiB", "25 MiB", idleVerdict)
	fmt.Printf("%-28s %10s %10s %10s %10s\n", "kilnd RSS peak", mib(peak), "", "~120 MiB", "-")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }
func ms(d time.Duration) string   { return fmt.Sprintf("%dms", d.Milliseconds()) }

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// timeIt runs f n times, calling before (untimed) first each time.
func timeIt(n int, before func(i int) error, f func() error) (time.Duration, error) {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		if before != nil {
			if err := before(i); err != nil {
				return 0, err
			}
		}
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	return median(ds), nil
}

// command runs a command, returning its combined output in the error.
func command(ctx context.Context, name string, args ...string) error {
	return runCmd(exec.CommandContext(ctx, name, args...))
}

// runCmd runs cmd, returning its combined output in the error.
func runCmd(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(cmd.Path), strings.Join(cmd.Args[1:], " "), err, out)
	}
	return nil
}
