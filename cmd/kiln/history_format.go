package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/progress"
)

// historyStatus is a record's status as buildx history shows it.
func historyStatus(s string) string {
	switch s {
	case "completed":
		return "Completed"
	case "failed":
		return "Error"
	case "canceled":
		return "Canceled"
	case "running":
		return "Running"
	}
	return s
}

// buildName names a build in kiln history ls: its Dockerfile and target.
func buildName(r *api.BuildRecord) string {
	n := dockerfileName(r)
	if t := r.GetTarget(); t != "" {
		n += " (" + t + ")"
	}
	return n
}

// buildDuration is how long a build took, as buildx prints durations.
func buildDuration(r *api.BuildRecord) string {
	if r.GetCreated() == nil || r.GetCompleted() == nil {
		return "-"
	}
	return humanDuration(r.GetCompleted().AsTime().Sub(r.GetCreated().AsTime()))
}

// humanDuration prints "0.3s", "12.5s", "1m 4s".
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	d = d.Round(time.Second)
	if d < time.Hour {
		return fmt.Sprintf("%dm %2ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %2dm", int(d.Hours()), int(d.Minutes())%60)
}

// historyRow is one record of kiln history ls --format json.
type historyRow struct {
	Ref       string    `json:"ref"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	Created   time.Time `json:"created"`
	Completed time.Time `json:"completed"`
	Duration  float64   `json:"duration"` // seconds
	Steps     int32     `json:"steps"`
	Cached    int32     `json:"cached"`
	Error     string    `json:"error,omitempty"`
}

// printHistory prints records as docker buildx history ls does.
func printHistory(w io.Writer, recs []*api.BuildRecord, format string, now time.Time) error {
	switch format {
	case "", "table":
		tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "BUILD ID\tNAME\tSTATUS\tCREATED AT\tDURATION")
		for _, r := range recs {
			created := time.Time{}
			if r.GetCreated() != nil {
				created = r.GetCreated().AsTime()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.GetRef(), buildName(r), historyStatus(r.GetStatus()), ago(created, now), buildDuration(r))
		}
		return tw.Flush()
	case "json":
		enc := json.NewEncoder(w)
		for _, r := range recs {
			row := historyRow{
				Ref: r.GetRef(), Name: buildName(r), Status: r.GetStatus(), Steps: r.GetSteps(), Cached: r.GetCached(), Error: r.GetError(),
				Created: r.GetCreated().AsTime(), Completed: r.GetCompleted().AsTime(),
			}
			row.Duration = row.Completed.Sub(row.Created).Seconds()
			if err := enc.Encode(row); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("--format %q: want table or json", format)
}

// dockerfileName is the Dockerfile a build read ("Dockerfile" unless
// named).
func dockerfileName(r *api.BuildRecord) string {
	if n := r.GetDockerfileName(); n != "" {
		return n
	}
	return "Dockerfile"
}

// printBuildInspect prints one record as docker buildx history inspect does,
// with each step's time and cache status.
func printBuildInspect(w io.Writer, r *api.BuildRecord, kilnPath string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "Dockerfile:\t%s\n", dockerfileName(r))
	if t := r.GetTarget(); t != "" {
		fmt.Fprintf(tw, "Target:\t%s\n", t)
	}
	fmt.Fprintf(tw, "Status:\t%s\n", historyStatus(r.GetStatus()))
	if r.GetCreated() != nil {
		fmt.Fprintf(tw, "Started:\t%s\n", r.GetCreated().AsTime().Local().Format("2006-01-02 15:04:05"))
	}
	fmt.Fprintf(tw, "Duration:\t%s\n", buildDuration(r))
	steps, cached := r.GetSteps(), r.GetCached()
	if steps > 0 {
		fmt.Fprintf(tw, "Build Steps:\t%d (%d%% cached)\n", steps, cached*100/steps)
	}
	if d := r.GetExporterResponse()["containerimage.digest"]; d != "" {
		fmt.Fprintf(tw, "Image:\t%s\n", d)
	}
	if n := r.GetExporterResponse()["image.name"]; n != "" {
		fmt.Fprintf(tw, "Image Name:\t%s\n", n)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if e := r.GetError(); e != "" {
		fmt.Fprintf(w, "\nError:\t%s\n", e)
	}
	if len(r.GetTrace()) > 0 {
		if c := r.GetCriticalPathNs(); c > 0 {
			fmt.Fprintf(w, "\nSteps (critical path %s, marked *):\n", humanDuration(time.Duration(c)))
		} else {
			fmt.Fprintln(w, "\nSteps:")
		}
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		usage := slices.ContainsFunc(r.GetTrace(), func(s *api.BuildStep) bool { return s.GetUsage() != nil })
		if usage {
			fmt.Fprintln(tw, "  #\tNAME\tSTATUS\tDURATION\tCPU\tMEMORY\tIO (R/W)")
		} else {
			fmt.Fprintln(tw, "  #\tNAME\tSTATUS\tDURATION")
		}
		for i, s := range r.GetTrace() {
			status := "DONE"
			switch {
			case s.GetError() != "":
				status = "ERROR"
			case s.GetCached():
				status = "CACHED"
				if src := s.GetCacheSource(); src != "" && src != "local" {
					status += " (" + src + ")"
				}
			case s.GetCompleted() == nil:
				status = "CANCELED"
			}
			mark := ""
			if s.GetCritical() {
				mark = " *"
			}
			fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s%s", i+1, trimName(s.GetName(), 70), status, stepDuration(s), mark)
			if u := s.GetUsage(); u != nil {
				fmt.Fprintf(tw, "\t%s\t%s\t%s/%s", humanDuration(time.Duration(u.GetCpuNs())), humanSize(u.GetMemoryPeak()), humanSize(u.GetIoRead()), humanSize(u.GetIoWrite()))
			} else if usage {
				fmt.Fprint(tw, "\t-\t-\t-")
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nPrint build logs: %s history logs %s\n", kilnPath, r.GetRef())
	return nil
}

func trimName(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func stepDuration(s *api.BuildStep) string {
	if s.GetStarted() == nil || s.GetCompleted() == nil {
		return "-"
	}
	return humanDuration(s.GetCompleted().AsTime().Sub(s.GetStarted().AsTime()))
}

// selectStep finds the step sel names: its number in kiln history inspect
// (#N or N), or its name, whole or a part only one step's name has.
func selectStep(trace []*api.BuildStep, sel string) (int, error) {
	if n, err := strconv.Atoi(strings.TrimPrefix(sel, "#")); err == nil {
		if n < 1 || n > len(trace) {
			return 0, fmt.Errorf("--step %s: the build has steps #1 to #%d", sel, len(trace))
		}
		return n - 1, nil
	}
	var matches []int
	for i, s := range trace {
		if s.GetName() == sel {
			return i, nil
		}
		if strings.Contains(s.GetName(), sel) {
			matches = append(matches, i)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return 0, fmt.Errorf("--step %q: no step of the build has that name (see kiln history inspect)", sel)
	}
	var names []string
	for _, i := range matches {
		names = append(names, fmt.Sprintf("#%d %s", i+1, trace[i].GetName()))
	}
	return 0, fmt.Errorf("--step %q names %d steps: %s", sel, len(matches), strings.Join(names, "; "))
}

// printLogs prints the steps' logs as kiln build --progress plain (and
// docker buildx history logs) do; only is the index of the one step to
// print, or -1 for all.
func printLogs(w io.Writer, trace []*api.BuildStep, only int) error {
	ch := make(chan progress.Event)
	go func() {
		defer close(ch)
		for i, s := range trace {
			ev := stepEvents(s)
			if only >= 0 && i != only {
				// Keep the numbering: the step is announced but prints
				// nothing (plain prints a vertex only once it has a name).
				ev = []progress.Event{{Vertex: &progress.VertexStatus{Digest: ev[0].Vertex.Digest}}}
			}
			for _, e := range ev {
				ch <- e
			}
		}
	}()
	_, err := progress.Display(context.Background(), progress.ModePlain, w, ch)
	return err
}

// stepEvents replays a recorded step as progress events: started, its
// log lines in time order, then its final state.
func stepEvents(s *api.BuildStep) []progress.Event {
	v := progress.VertexStatus{Name: s.GetName(), Cached: s.GetCached(), CacheSource: s.GetCacheSource(), Error: s.GetError(), Location: s.GetLocation()}
	v.Digest = digest.Digest(s.GetDigest())
	var started time.Time
	if s.GetStarted() != nil {
		started = s.GetStarted().AsTime()
		v.Started = &started
	}
	first := v
	first.Cached, first.Error = false, ""
	evs := []progress.Event{{Vertex: &first}}
	if s.GetCached() {
		evs = nil
	}
	if n := s.GetLogsDropped(); n > 0 {
		evs = append(evs, progress.Event{Log: &progress.Log{Vertex: v.Digest, Stream: 1, Time: started,
			Data: []byte(fmt.Sprintf("[%d earlier lines not kept]\n", n))}})
	}
	lines := s.GetLogs()
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].GetAtNs() < lines[j].GetAtNs() })
	for _, l := range lines {
		evs = append(evs, progress.Event{Log: &progress.Log{
			Vertex: v.Digest, Stream: int(l.GetStream()), Time: started.Add(time.Duration(l.GetAtNs())),
			Data: append(append([]byte(nil), l.GetText()...), '\n'),
		}})
	}
	if s.GetCompleted() != nil {
		c := s.GetCompleted().AsTime()
		v.Completed = &c
	}
	return append(evs, progress.Event{Vertex: &v})
}
