package gateway

import (
	"net"
	"os"
	"sync"
	"time"
)

// pipeConn is the frontend container's stdio as one net.Conn: reads come
// from its stdout, writes go to its stdin. gRPC runs HTTP/2 over it, as
// BuildKit's frontends expect.
type pipeConn struct {
	r, w *os.File
	once sync.Once
}

func newPipeConn(r, w *os.File) *pipeConn { return &pipeConn{r: r, w: w} }

func (c *pipeConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *pipeConn) Write(b []byte) (int, error) { return c.w.Write(b) }

// Close closes both pipes.
func (c *pipeConn) Close() error {
	c.once.Do(func() {
		c.r.Close()
		c.w.Close()
	})
	return nil
}

func (c *pipeConn) LocalAddr() net.Addr              { return stdioAddr{} }
func (c *pipeConn) RemoteAddr() net.Addr             { return stdioAddr{} }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "pipe" }
func (stdioAddr) String() string  { return "frontend" }

// connListener hands out one connection, then blocks until closed.
type connListener struct {
	mu     sync.Mutex
	conn   net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener(c net.Conn) *connListener {
	return &connListener{conn: c, closed: make(chan struct{})}
}

// Accept implements net.Listener.
func (l *connListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

// Close implements net.Listener.
func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr implements net.Listener.
func (l *connListener) Addr() net.Addr { return stdioAddr{} }
