// Command bench measures Kiln end to end, as `make bench` runs it: it
// builds kilnd and kiln, starts a local registry holding the busybox base
// image and a kilnd on a temporary root (docker.io mirrored to the local
// registry, nothing from the internet), runs each case several times with
// the kiln client and prints the median wall times and the daemon's memory
// next to BuildKit v0.32.2's figures on the same kind of machine.
//
// The buildctl case runs BuildKit's client (bin/tools/buildctl, which
// hack/bench.sh builds) beside kiln build on the same daemon.
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
	cases := flag.String("cases", "hello,parallel,context,chain,export,shared,buildctl", "comma-separated cases to run")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	flag.Parse()
	if err := run(*runs, strings.Split(*cases, ","), *keep); err != nil {
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
}

func run(runs int, cases []string, keep bool) error {
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
	env, err := setup(dir)
	if err != nil {
		return err
	}
	defer env.stop()

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
	fmt.Println("\nkilnd ran with max-parallelism = 4 (BuildKit's measurement used its default, no limit);")
	fmt.Println("only hello exports an image (-t); the other cases keep their result in the build cache, as BuildKit's did.")
	return nil
}

func printTable(rows []row, idle, peak int64) {
	fmt.Printf("\n%-28s %10s %10s %10s  %s\n", "case (median)", "kiln", "BuildKit", "target", "")
	fmt.Println(strings.Repeat("-", 72))
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
		fmt.Printf("%-28s %10s %10s %10s  %s %s\n", r.name, secs(r.kiln), bk, target, verdict, r.note)
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	idleVerdict := "ok"
	if idle > 25<<20 {
		idleVerdict = "MISSED"
	}
	fmt.Printf("%-28s %10s %10s %10s  %s\n", "kilnd RSS idle", mib(idle), "46 MiB", "25 MiB", idleVerdict)
	fmt.Printf("%-28s %10s %10s %10s\n", "kilnd RSS peak", mib(peak), "~120 MiB", "-")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

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
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return nil
}
