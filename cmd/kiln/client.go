package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/client"
)

// newClient returns a client for the daemon named by the global flags
// (--addr, then KILN_HOST, then the default socket) with the TLS flags.
func newClient(cmd *cobra.Command) (*client.Client, error) {
	fl := cmd.Flags()
	addr, _ := fl.GetString("addr")
	ca, _ := fl.GetString("tlscacert")
	cert, _ := fl.GetString("tlscert")
	key, _ := fl.GetString("tlskey")
	var opts []client.Option
	if ca != "" || cert != "" || key != "" {
		opts = append(opts, client.WithTLSFiles(ca, cert, key))
	}
	return client.New(client.ResolveAddress(addr, os.Getenv), opts...)
}
