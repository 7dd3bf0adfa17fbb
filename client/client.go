package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kiln-build/kiln/api"
)

// DefaultAddress is where kilnd listens by default.
const DefaultAddress = "unix:///run/kiln/kilnd.sock"

// EnvHost is the environment variable that names the daemon's address.
const EnvHost = "KILN_HOST"

// ResolveAddress picks the address to use: flag when set, else $KILN_HOST,
// else the rootless socket ($XDG_RUNTIME_DIR/kiln/kilnd.sock) when not root
// and it exists, else DefaultAddress.
func ResolveAddress(flag string, getenv func(string) string) string {
	if flag != "" {
		return flag
	}
	if h := getenv(EnvHost); h != "" {
		return h
	}
	if os.Geteuid() != 0 {
		if dir := getenv("XDG_RUNTIME_DIR"); dir != "" {
			p := filepath.Join(dir, "kiln", "kilnd.sock")
			if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
				return "unix://" + p
			}
		}
	}
	return DefaultAddress
}

// Client talks to one kilnd.
type Client struct {
	addr    string
	network string
	target  string // host:port or socket path
	tls     bool
	conn    *grpc.ClientConn
	ctl     api.ControlClient

	mu      sync.Mutex
	dialErr error // the last failed dial, for messages
}

type options struct {
	tlsConf       *tls.Config
	ca, cert, key string
	dialTimeout   time.Duration
}

// Option configures a Client.
type Option func(*options)

// WithTLSFiles turns on TLS with the CA that signed the daemon's
// certificate and, for mutual TLS, the client's certificate and key. Empty
// paths are skipped (ca "" means the system roots).
func WithTLSFiles(ca, cert, key string) Option {
	return func(o *options) { o.ca, o.cert, o.key = ca, cert, key }
}

// WithTLSConfig turns on TLS with a ready configuration.
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tlsConf = c } }

// WithDialTimeout bounds each connection attempt (default 10s).
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// New returns a client for addr (unix:///path or tcp://host:port). It
// does not connect yet; the first call does.
func New(addr string, opts ...Option) (*Client, error) {
	o := options{dialTimeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{addr: addr}
	scheme, rest, ok := strings.Cut(addr, "://")
	switch {
	case ok && scheme == "unix" && strings.HasPrefix(rest, "/"):
		c.network, c.target = "unix", rest
	case ok && scheme == "tcp" && rest != "":
		if _, port, err := net.SplitHostPort(rest); err != nil || !isPort(port) {
			return nil, fmt.Errorf("bad kilnd address %q: want tcp://host:port", addr)
		}
		c.network, c.target = "tcp", rest
	default:
		return nil, fmt.Errorf("bad kilnd address %q: want unix:///path/to/kilnd.sock or tcp://host:port", addr)
	}

	tlsConf, err := o.clientTLS(c)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	authority := "localhost"
	if c.network == "tcp" {
		authority = c.target
	}
	if tlsConf != nil {
		if c.network == "unix" {
			return nil, fmt.Errorf("TLS options need a tcp:// address; %s is a unix socket", addr)
		}
		c.tls = true
		if tlsConf.ServerName == "" {
			tlsConf = tlsConf.Clone()
			tlsConf.ServerName, _, _ = net.SplitHostPort(c.target)
		}
		authority = tlsConf.ServerName
		creds = credentials.NewTLS(tlsConf)
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithAuthority(authority),
		grpc.WithContextDialer(c.dialer(o.dialTimeout)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(32 << 20)),
		// Large windows for context uploads and streamed image tarballs.
		grpc.WithInitialWindowSize(8 << 20),
		grpc.WithInitialConnWindowSize(8 << 20),
		grpc.WithWriteBufferSize(1 << 20),
		grpc.WithReadBufferSize(1 << 20),
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, dopts...)
	if err != nil {
		return nil, fmt.Errorf("kilnd client for %s: %w", addr, err)
	}
	c.conn = conn
	c.ctl = api.NewControlClient(conn)
	return c, nil
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n <= 65535
}

func (o *options) clientTLS(c *Client) (*tls.Config, error) {
	if o.tlsConf != nil {
		return o.tlsConf, nil
	}
	if o.ca == "" && o.cert == "" && o.key == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if host, _, err := net.SplitHostPort(c.target); err == nil {
		conf.ServerName = host
	}
	if o.ca != "" {
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			return nil, fmt.Errorf("read --tlscacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tlscacert %s: no PEM certificates in it", o.ca)
		}
		conf.RootCAs = pool
	}
	switch {
	case o.cert != "" && o.key != "":
		kp, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, fmt.Errorf("load --tlscert %s and --tlskey %s: %w", o.cert, o.key, err)
		}
		conf.Certificates = []tls.Certificate{kp}
	case o.cert != "" || o.key != "":
		return nil, fmt.Errorf("--tlscert and --tlskey go together; only one is set")
	}
	return conf, nil
}

// dialer connects to the daemon and remembers why a connection failed.
func (c *Client) dialer(timeout time.Duration) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, c.network, c.target)
		c.mu.Lock()
		c.dialErr = err
		c.mu.Unlock()
		return conn, err
	}
}

func (c *Client) lastDialErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialErr
}

// Addr returns the daemon's address.
func (c *Client) Addr() string { return c.addr }

// Control returns the raw API client, for calls this package does not wrap
// (Build streams). Pass its errors through WrapErr.
func (c *Client) Control() api.ControlClient { return c.ctl }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Info asks the daemon to describe itself.
func (c *Client) Info(ctx context.Context) (*api.InfoResponse, error) {
	resp, err := c.ctl.Info(ctx, &api.InfoRequest{})
	if err != nil {
		return nil, c.WrapErr(err)
	}
	return resp, nil
}
