// Command agentcheck asks the ssh agent at $SSH_AUTH_SOCK for its
// identities and prints how many it holds: a RUN --mount=type=ssh step of
// the end-to-end tests runs it to show the agent was reached. It speaks
// the two messages of the agent protocol it needs (RFC draft-miller-ssh-agent).
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
)

const (
	requestIdentities = 11
	identitiesAnswer  = 12
)

func main() {
	n, err := identities(os.Getenv("SSH_AUTH_SOCK"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentcheck:", err)
		os.Exit(1)
	}
	fmt.Println(n)
}

func identities(sock string) (uint32, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Write([]byte{0, 0, 0, 1, requestIdentities}); err != nil {
		return 0, err
	}
	var size uint32
	if err := binary.Read(c, binary.BigEndian, &size); err != nil {
		return 0, err
	}
	if size < 5 || size > 1<<20 {
		return 0, fmt.Errorf("answer of %d bytes", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		return 0, err
	}
	if body[0] != identitiesAnswer {
		return 0, fmt.Errorf("answer type %d", body[0])
	}
	return binary.BigEndian.Uint32(body[1:5]), nil
}
