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

	"github.com/kiln-build/kiln/api"
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

// envRedisAddr names the index kiln cache ls --remote reads directly.
const envRedisAddr = "KILN_REDIS_ADDR"

func newCacheLsCmd() *cobra.Command {
	var f cacheLsFlags
	cmd := &cobra.Command{
		Use:   "ls --remote [--build REF] [--format json]",
		Short: "List the records a shared cache index holds",
		Long: `List the records of kilnd's shared cache index (kilnd.toml's
[[cache.registry]] type = "redis"): for each cache key, the daemon that
wrote it (a random writer id), its layers and their size. --build REF lists
only the keys that build (see kiln history) wrote or used.

kilnd reads the index and sends the records (--addr, as for the other
commands), so a CI runner that reaches only kilnd can list them. To read an
index directly, without kilnd, pass --redis-addr (or set $KILN_REDIS_ADDR;
--addr on the command line wins over it) or --config with a kilnd.toml that
names the index. The output is the same either way. kiln du reports the
daemon's own cache.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCacheLs(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.remote, "remote", false, "list the shared cache index")
	fl.StringVar(&f.redisAddr, "redis-addr", "", "read the index directly at redis://[user:password@]host:port[/db], not through kilnd (default $"+envRedisAddr+")")
	fl.StringVar(&f.config, "config", "", "read the index directly, at the address this kilnd.toml names, not through kilnd")
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
	// Index is the index's address (password masked); a daemon may
	// read several.
	Index string `json:"index"`
}

// cacheListing is what kiln cache ls --remote prints: the records and the
// addresses of the indexes they come from.
type cacheListing struct {
	indexes []string
	rows    []cacheLsRow
}

func runCacheLs(cmd *cobra.Command, f cacheLsFlags) error {
	if !f.remote {
		return errors.New("kiln cache ls lists the shared cache index: pass --remote (kiln du lists the daemon's own build cache)")
	}
	if f.format != "table" && f.format != "json" {
		return fmt.Errorf("--format %q: want table or json", f.format)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
	defer cancel()
	var l cacheListing
	var err error
	if direct, addr := directIndex(cmd, f); direct {
		l, err = listIndex(ctx, f, addr)
	} else {
		l, err = listThroughKilnd(ctx, cmd, f.build)
	}
	if err != nil {
		return err
	}
	return printCacheListing(cmd, f.format, l)
}

// directIndex reports whether kiln reads the index itself rather than
// through kilnd, and at which address ("" for kilnd.toml's): --redis-addr
// or --config on the command line, else $KILN_REDIS_ADDR unless --addr is
// on the command line.
func directIndex(cmd *cobra.Command, f cacheLsFlags) (bool, string) {
	fl := cmd.Flags()
	switch {
	case f.redisAddr != "":
		return true, f.redisAddr
	case f.config != "":
		return true, ""
	case fl.Changed("addr"):
		return false, ""
	}
	if env := os.Getenv(envRedisAddr); env != "" {
		return true, env
	}
	return false, ""
}

// listThroughKilnd asks kilnd for its shared cache's records.
func listThroughKilnd(ctx context.Context, cmd *cobra.Command, build string) (cacheListing, error) {
	c, err := newClient(cmd)
	if err != nil {
		return cacheListing{}, err
	}
	defer c.Close()
	var l cacheListing
	indexes, err := c.CacheRecords(ctx, build, func(r *api.CacheRecord) error {
		row := cacheLsRow{Key: r.GetKey(), Writer: r.GetWriter(), Layers: int(r.GetLayers()), Size: r.GetSize(), Index: r.GetIndex()}
		if r.GetCreated() != nil {
			row.Created = r.GetCreated().AsTime()
		}
		l.rows = append(l.rows, row)
		return nil
	})
	if err != nil {
		return cacheListing{}, directHint(err)
	}
	for _, x := range indexes {
		l.indexes = append(l.indexes, x.GetAddress())
	}
	return l, nil
}

// directHint adds how to read the index without kilnd to an error that
// says kilnd cannot answer (not reached, or too old to know the call).
func directHint(err error) error {
	if errors.Is(err, errdefs.ErrUnimplemented) || (errdefs.IsUnavailable(err) && strings.HasPrefix(err.Error(), "cannot reach kilnd")) {
		return &hintError{err: err, hint: "To read the index without kilnd, pass --redis-addr redis://host:port."}
	}
	return err
}

// hintError is err with a sentence after its message; its class stays.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return strings.TrimSuffix(e.err.Error(), ".") + ". " + e.hint }

func (e *hintError) Unwrap() error { return e.err }

// listIndex reads the index at addr (kilnd.toml's when addr is empty)
// itself.
func listIndex(ctx context.Context, f cacheLsFlags, addr string) (cacheListing, error) {
	if addr == "" {
		var err error
		if addr, err = configIndexAddr(f.config); err != nil {
			return cacheListing{}, err
		}
	}
	idx, err := cacheredis.New(cacheredis.Options{Addr: addr, DialTimeout: 2 * time.Second, OpTimeout: 10 * time.Second})
	if err != nil {
		return cacheListing{}, err
	}
	defer idx.Close()
	l := cacheListing{indexes: []string{idx.Addr()}}
	err = idx.List(ctx, f.build, func(r remote.Record) error {
		l.rows = append(l.rows, cacheLsRow{Key: r.Key.String(), Writer: r.Writer, Layers: len(r.Layers), Size: r.Size(),
			Created: r.Created, Index: idx.Addr()})
		return nil
	})
	return l, err
}

// printCacheListing prints the records newest first: a table on stdout
// and a summary on stderr, or a JSON array.
func printCacheListing(cmd *cobra.Command, format string, l cacheListing) error {
	rows := l.rows
	keys := map[string]bool{}
	var total int64
	for i := range rows {
		// Times print alike whether they came through kilnd (UTC) or
		// straight from the index.
		rows[i].Created = rows[i].Created.UTC()
		keys[rows[i].Key] = true
		total += rows[i].Size
	}
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].Created.Equal(rows[j].Created) {
			return rows[i].Created.After(rows[j].Created)
		}
		if rows[i].Key != rows[j].Key {
			return rows[i].Key < rows[j].Key
		}
		if rows[i].Writer != rows[j].Writer {
			return rows[i].Writer < rows[j].Writer
		}
		return rows[i].Index < rows[j].Index
	})
	out := cmd.OutOrStdout()
	if format == "json" {
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
		len(rows), len(keys), strings.Join(l.indexes, ", "), humanSize(total))
	return nil
}

// configIndexAddr returns the first redis index of the kilnd.toml at path.
func configIndexAddr(path string) (string, error) {
	cfg, _, err := config.LoadFile(path)
	if err != nil {
		return "", err
	}
	for _, r := range cfg.Cache.Registry {
		if addr, ok := r["redis-addr"].(string); ok && r.Type() == "redis" {
			return addr, nil
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
