package progress

import (
	"context"
	"sync"
)

// Buffer is a Writer whose events are read in order by one consumer. Writes
// never block: events queue in memory until Next takes them.
type Buffer struct {
	mu     sync.Mutex
	events []Event
	closed bool
	notify chan struct{}
	done   chan struct{} // closed by Close
}

// NewBuffer returns an empty buffer.
func NewBuffer() *Buffer {
	return &Buffer{notify: make(chan struct{}, 1), done: make(chan struct{})}
}

// Done is closed when the buffer is closed.
func (b *Buffer) Done() <-chan struct{} { return b.done }

// Write queues e. Events written after Close are dropped.
func (b *Buffer) Write(e Event) {
	b.mu.Lock()
	if !b.closed {
		b.events = append(b.events, e)
	}
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// Close ends the stream: Next returns the queued events, then ok=false.
func (b *Buffer) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// Next waits for queued events and returns all of them. It returns ok=false
// when the buffer is closed and drained, or ctx is done.
func (b *Buffer) Next(ctx context.Context) (events []Event, ok bool) {
	for {
		b.mu.Lock()
		if len(b.events) > 0 {
			events, b.events = b.events, nil
			b.mu.Unlock()
			return events, true
		}
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return nil, false
		}
		select {
		case <-b.notify:
		case <-ctx.Done():
			return nil, false
		}
	}
}
