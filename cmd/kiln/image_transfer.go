package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/client"
	"github.com/kiln-build/kiln/progress"
)

func newImageImportCmd() *cobra.Command {
	var platform, message string
	cmd := &cobra.Command{
		Use:     "import FILE [NAME]",
		Aliases: []string{"load"},
		Short:   "Load an image tarball or a root filesystem tarball into kilnd",
		Long: `Load FILE into kilnd's local image store. FILE "-" reads standard input.

FILE may be an image archive, as docker load takes it: an OCI image layout
tarball (kiln build -o type=oci, kiln image save) or a docker save archive.
Its images keep the names the archive gives them, unless NAME is given (for
an archive of one image).

Anything else tar-shaped is a root filesystem, as docker import takes it: it
becomes a one-layer image named NAME (required) for --platform (default:
kilnd's platform). gzip, zstd, bzip2 and xz compression are recognised.`,
		Example: `  kiln image import busybox.tar
  kiln image import rootfs.tar.gz my-base:1
  kiln image save app | ssh host kiln image import -`,
		Args: argsBetween(1, 2, "FILE [NAME]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			var r io.Reader
			source := file
			if file == "-" {
				r, source = cmd.InOrStdin(), "stdin"
			} else {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("kiln image import: %w", unwrapPathError(err))
				}
				defer f.Close()
				if st, err := f.Stat(); err == nil && st.IsDir() {
					return fmt.Errorf("kiln image import: %s is a directory; give a tarball", file)
				}
				r, source = f, filepath.Base(file)
			}
			o := client.ImportOptions{SourceName: source, Platform: platform, Message: message}
			if len(args) == 2 {
				o.Name = args[1]
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.ImportImage(cmd.Context(), r, o)
			if err != nil {
				return err
			}
			for _, img := range resp.GetImages() {
				fmt.Fprintf(cmd.OutOrStdout(), "Loaded image: %s (%s)\n", img.GetName(), img.GetDigest())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "platform of a root filesystem image (default: kilnd's)")
	cmd.Flags().StringVarP(&message, "message", "m", "", "history comment of a root filesystem image")
	return cmd
}

func newImagePushCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "push NAME",
		Short: "Push an image of kilnd's local store to its registry",
		Long: `Push NAME to the registry its name says (docker.io when it names none),
through kilnd's registry configuration (mirrors are not used for pushes).
Your docker login for that registry (~/.docker/config.json, credential
helpers included) is sent with the request and used ahead of kilnd's own.`,
		Example: `  kiln image tag my-app registry.example.com:5000/team/my-app:1.0
  kiln image push registry.example.com:5000/team/my-app:1.0`,
		Args: argsBetween(1, 1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := name.ParseReference(args[0])
			if err != nil {
				return fmt.Errorf("kiln image push: invalid image name %q: %w", args[0], err)
			}
			host := ref.Context().RegistryStr()
			var creds []*api.RegistryCredential
			if user, secret, token := dockerCredentials(host); user != "" || token != "" {
				creds = append(creds, &api.RegistryCredential{Host: host, Username: user, Secret: secret, IdentityToken: token})
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			shown := host
			if shown == name.DefaultRegistry {
				shown = "docker.io"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Pushing %s to %s\n", args[0], shown)
			resp, err := c.PushImage(cmd.Context(), args[0], creds)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: digest: %s size: %d\n", resp.GetRef(), resp.GetDigest(), resp.GetSize())
			return nil
		},
	}
}

func newImageSaveCmd() *cobra.Command {
	var out, format, platform string
	cmd := &cobra.Command{
		Use:   "save NAME... [-o FILE]",
		Short: "Write images of kilnd's local store to a tarball",
		Long: `Write the named images to one tarball: an OCI image layout (the default),
or with --format docker a tarball docker load reads (an OCI layout with
docker's manifest.json, one platform per image). Without -o, or with -o -,
the tarball goes to standard output, which must not be a terminal.

A multi-platform image is saved whole, unless --platform picks one platform;
--format docker takes kilnd's platform when --platform is not given.`,
		Example: `  kiln image save my-app -o my-app.tar
  kiln image save --format docker my-app | docker load`,
		Args: argsBetween(1, -1, "NAME..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "oci", "docker":
			default:
				return fmt.Errorf("--format %q: want \"oci\" or \"docker\"", format)
			}
			var w io.Writer
			var fw *fileWriter
			if out == "" || out == "-" {
				w = cmd.OutOrStdout()
				if progress.IsTerminal(w) {
					return errors.New("kiln image save: refusing to write a tarball to a terminal: use -o FILE or redirect standard output")
				}
			} else {
				if err := checkDest("oci", out); err != nil {
					return fmt.Errorf("-o %s: %w", out, err)
				}
				var err error
				if fw, err = newFileWriter(out); err != nil {
					return fmt.Errorf("-o %s: %w", out, err)
				}
				w = fw
			}
			c, err := newClient(cmd)
			if err != nil {
				if fw != nil {
					_ = fw.CloseWithError(err)
				}
				return err
			}
			defer c.Close()
			err = c.SaveImage(cmd.Context(), args, client.SaveOptions{Format: format, Platform: platform}, w)
			if fw != nil {
				if err != nil {
					_ = fw.CloseWithError(err)
					return err
				}
				return fw.Close()
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", `write to FILE ("-": standard output)`)
	cmd.Flags().StringVar(&format, "format", "oci", `tarball format: "oci" or "docker"`)
	cmd.Flags().StringVar(&platform, "platform", "", "save only this platform of multi-platform images")
	return cmd
}
