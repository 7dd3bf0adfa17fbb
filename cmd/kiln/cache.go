package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/cache/remote"
	cacheredis "github.com/kiln-build/kiln/cache/remote/redis"
	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
)

func newCacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Inspect build caches",
	}
	cmd.AddCommand(newCacheLsCmd())
	return cmd
}

type cacheLsFlags struct {
	remote    bool
	redisAddr string
	config    string
	build     string
	format    string
}

func newCacheLsCmd() *cobra.Command {
	var f cacheLsFlags
	cmd := &cobra.Command{
		Use:   "ls --remote [--build REF]",
		Short: "List the records a shared cache index holds",
		Long: `List the records of the shared cache index (kilnd.toml's [[cache.registry]]
type = "redis"): for each cache key, the daemon that wrote it (a random
writer id), its layers and their size. --build REF lists only the keys that
build (see kiln history) wrote or used.

The index is read directly, at --redis-addr ($KILN_REDIS_ADDR) or at the
address in kilnd.toml (--config, default /etc/kiln/kilnd.toml). kiln du
reports the daemon's own cache.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCacheLs(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.remote, "remote", false, "list the shared cache index")
	fl.StringVar(&f.redisAddr, "redis-addr", os.Getenv("KILN_REDIS_ADDR"), "the index's address, redis://[user:password@]host:port[/db] (default $KILN_REDIS_ADDR, else kilnd.toml's)")
	fl.StringVar(&f.config, "config", "", "kilnd.toml to read the index address from (default "+config.HostEnv().DefaultPath()+")")
	fl.StringVar(&f.build, "build", "", "list only the keys of this build")
	fl.StringVar(&f.format, "format", "table", "output format: table or json")
	return cmd
}

// cacheLsRow is one record as kiln cache ls prints it (json).
type cacheLsRow struct {
	Key     string    `json:"key"`
	Writer  string    `json:"writer"`
	Layers  int       `json:"layers"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

func runCacheLs(cmd *cobra.Command, f cacheLsFlags) error {
	if !f.remote {
		return errors.New("kiln cache ls lists the shared cache index: pass --remote (kiln du lists the daemon's own build cache)")
	}
	if f.format != "table" && f.format != "json" {
		return fmt.Errorf("--format %q: want table or json", f.format)
	}
	addr, err := indexAddr(f)
	if err != nil {
		return err
	}
	idx, err := cacheredis.New(cacheredis.Options{Addr: addr, DialTimeout: 2 * time.Second, OpTimeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer idx.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
	defer cancel()
	var rows []cacheLsRow
	keys := map[string]bool{}
	var total int64
	err = idx.List(ctx, f.build, func(r remote.Record) error {
		rows = append(rows, cacheLsRow{Key: r.Key.String(), Writer: r.Writer, Layers: len(r.Layers), Size: r.Size(), Created: r.Created})
		keys[r.Key.String()] = true
		total += r.Size()
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].Created.Equal(rows[j].Created) {
			return rows[i].Created.After(rows[j].Created)
		}
		return rows[i].Key < rows[j].Key
	})
	out := cmd.OutOrStdout()
	if f.format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []cacheLsRow{}
		}
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tWRITER\tLAYERS\tSIZE\tCREATED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s ago\n", shortKey(r.Key), r.Writer, r.Layers, humanSize(r.Size), since(r.Created))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%d records of %d keys in %s (%s of layers; blobs shared by records count once per record)\n",
		len(rows), len(keys), idx.Addr(), humanSize(total))
	return nil
}

// indexAddr returns --redis-addr, or the first redis index of kilnd.toml.
func indexAddr(f cacheLsFlags) (string, error) {
	if f.redisAddr != "" {
		return f.redisAddr, nil
	}
	path := f.config
	if path == "" {
		path = config.HostEnv().DefaultPath()
	}
	cfg, _, err := config.LoadFile(path)
	if errdefs.IsNotFound(err) && f.config == "" {
		return "", fmt.Errorf("no shared cache index: pass --redis-addr redis://host:port (or --config kilnd.toml; %s does not exist)", path)
	}
	if err != nil {
		return "", err
	}
	for _, r := range cfg.Cache.Registry {
		if r.Type == "redis" {
			return r.RedisAddr, nil
		}
	}
	return "", fmt.Errorf("%s has no [[cache.registry]] type = \"redis\" index: pass --redis-addr", path)
}

func shortKey(k string) string {
	_, hex, ok := strings.Cut(k, ":")
	if ok && len(hex) > 12 {
		return hex[:12]
	}
	return k
}

func since(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
