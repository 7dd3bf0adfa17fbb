package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kiln-build/kiln/config"
)

// listener is one open API listener.
type listener struct {
	addr   string // as configured: unix:///run/kiln/kilnd.sock, tcp://0.0.0.0:1234
	shown  string // as reported: tcp ports resolved
	l      net.Listener
	tls    bool
	socket string // unix socket path to remove on shutdown
}

// openListener opens one [grpc] address. tlsConf is nil without [grpc.tls].
func openListener(addr string, g config.GRPC, tlsConf *tls.Config, log *slog.Logger) (*listener, error) {
	network, address, err := config.ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	switch network {
	case "unix":
		l, err := listenUnix(address, g.UID, g.GID)
		if err != nil {
			return nil, err
		}
		return &listener{addr: addr, shown: "unix://" + address, l: l, socket: address}, nil
	default:
		l, err := net.Listen("tcp", address)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		shown := "tcp://" + l.Addr().String()
		if tlsConf == nil {
			log.Warn("UNPROTECTED TCP LISTENER: anyone who can reach " + shown +
				" can run builds, with any RUN command, as " + whoami() +
				" on this machine. Set [grpc.tls] cert, key and ca to require client certificates.")
		} else if tlsConf.ClientCAs == nil {
			log.Warn("TLS listener without client verification: anyone who can reach " + shown +
				" can run builds as " + whoami() + ". Set [grpc.tls] ca to require client certificates.")
		}
		return &listener{addr: addr, shown: shown, l: l, tls: tlsConf != nil}, nil
	}
}

func whoami() string {
	uid := os.Geteuid()
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("uid %d (%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid %d", uid)
}

// listenUnix listens on a unix socket: the directory is created (0711), a
// stale socket from a dead daemon is replaced, and the socket gets mode
// 0660 and the configured owner.
func listenUnix(path string, uid, gid *int) (net.Listener, error) {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("create socket directory: %w", err)
		}
		if err := os.Chmod(dir, 0o711); err != nil {
			return nil, fmt.Errorf("create socket directory: %w", err)
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on unix://%s: the path exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on unix://%s: another process is listening on it (another kilnd?)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on unix://%s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("set socket mode: %w", err)
	}
	if uid != nil || gid != nil {
		u, g := -1, -1
		if uid != nil {
			u = *uid
		}
		if gid != nil {
			g = *gid
		}
		if err := os.Chown(path, u, g); err != nil {
			l.Close()
			return nil, fmt.Errorf("set socket owner to uid %d gid %d: %w", u, g, err)
		}
	}
	return l, nil
}

// serverTLS builds the TLS configuration of [grpc.tls], or nil when it is
// not set. With a CA, clients must present a certificate it signed.
func serverTLS(t config.TLS) (*tls.Config, error) {
	if t.Cert == "" && t.Key == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("[grpc.tls] load cert %s and key %s: %w", t.Cert, t.Key, err)
	}
	c := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("[grpc.tls] read ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("[grpc.tls] ca %s: no PEM certificates in it", t.CA)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}
