package session

import (
	"context"
	"io"
	"net"
	"sync"
)

// ServeAgent listens on the unix socket path and relays every connection
// to the client's ssh agent id over s, so that a program that wants an
// SSH_AUTH_SOCK (ssh in a RUN step, git fetching an ssh remote) reaches
// the agent of the client that started the build. The agent's keys never
// leave the client: only agent protocol messages travel. Close the
// returned closer to stop listening; it waits for open relays to end.
func ServeAgent(ctx context.Context, s Session, id, path string) (io.Closer, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	a := &agentRelay{l: l}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				defer c.Close()
				agent, err := s.DialSSH(ctx, id)
				if err != nil {
					return
				}
				defer agent.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(agent, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, agent); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return a, nil
}

type agentRelay struct {
	l  net.Listener
	wg sync.WaitGroup
}

func (a *agentRelay) Close() error {
	err := a.l.Close()
	a.wg.Wait()
	return err
}
