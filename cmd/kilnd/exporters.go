package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kiln-build/kiln/config"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/exporter/plugin"
)

// builtinExporters are the --output types compiled into kilnd, by name.
func builtinExporters() map[string]exporter.Factory {
	return map[string]exporter.Factory{
		exporter.TypeImage:    exporter.ImageFactory(),
		exporter.TypeRegistry: exporter.RegistryFactory(),
		exporter.TypeOCI:      exporter.OCIFactory(),
		exporter.TypeDocker:   exporter.DockerFactory(),
		exporter.TypeLocal:    exporter.LocalFactory(),
		exporter.TypeTar:      exporter.TarFactory(),
	}
}

// exporters are the daemon's --output types: the built-in ones and one per
// [[exporter.plugin]], whose program must exist and be executable now.
func exporters(c config.Exporter) (map[string]exporter.Factory, error) {
	out := builtinExporters()
	for _, p := range c.Plugin {
		if _, ok := out[p.Name]; ok {
			return nil, errdefs.Invalidf("[[exporter.plugin]] %s: the output type %q exists already", p.Name, p.Name)
		}
		if len(p.Command) == 0 {
			return nil, errdefs.Invalidf("[[exporter.plugin]] %s: command is empty", p.Name)
		}
		if err := checkProgram(p.Command[0]); err != nil {
			return nil, fmt.Errorf("[[exporter.plugin]] %s: command: %w", p.Name, err)
		}
		out[p.Name] = plugin.Factory(plugin.Options{Name: p.Name, Command: p.Command, Env: p.Env, Timeout: time.Duration(p.Timeout)})
	}
	return out, nil
}

// checkProgram fails when path is not an executable file.
func checkProgram(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("%s does not exist", path))
	case err != nil:
		return errdefs.WithClass(errdefs.ErrFailedPrecondition, err)
	case !fi.Mode().IsRegular():
		return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("%s is not a file", path))
	case fi.Mode().Perm()&0o111 == 0:
		return errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf("%s is not executable", path))
	}
	return nil
}
