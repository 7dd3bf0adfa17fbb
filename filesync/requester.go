package filesync

import (
	"context"
	"sync"

	"github.com/kiln-build/kiln/api"
)

// requester sends Receive's FileRequests from its own goroutine, so that the
// receive loop keeps draining the client's messages while a request waits
// on a full stream.
type requester struct {
	id    uint32
	send  func(*api.FileRequest) error
	batch int

	notify chan struct{}
	errc   chan error // the first send error
	exited chan struct{}

	mu      sync.Mutex
	queue   []uint32
	final   bool // send done once the queue is empty
	aborted bool // drop the queue, send done
}

func newRequester(ctx context.Context, id uint32, send func(*api.FileRequest) error, batch int) *requester {
	q := &requester{
		id: id, send: send, batch: batch,
		notify: make(chan struct{}, 1),
		errc:   make(chan error, 1),
		exited: make(chan struct{}),
	}
	go q.loop(ctx)
	return q
}

// add queues indexes; final says no more will follow.
func (q *requester) add(idx []uint32, final bool) {
	q.mu.Lock()
	q.queue = append(q.queue, idx...)
	q.final = q.final || final
	q.mu.Unlock()
	q.wake()
}

// abort ends the sync early: queued requests are dropped and the client is
// told that no more will come.
func (q *requester) abort() {
	q.mu.Lock()
	q.queue, q.final, q.aborted = nil, true, true
	q.mu.Unlock()
	q.wake()
}

// wait returns when the loop has exited.
func (q *requester) wait() { <-q.exited }

func (q *requester) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *requester) loop(ctx context.Context) {
	defer close(q.exited)
	for {
		q.mu.Lock()
		n := min(len(q.queue), q.batch)
		idx := append([]uint32(nil), q.queue[:n]...)
		q.queue = q.queue[n:]
		done := q.final && len(q.queue) == 0
		aborted := q.aborted
		q.mu.Unlock()

		if aborted {
			// Best effort: the client stops serving this sync.
			_ = q.send(&api.FileRequest{Id: q.id, Done: true})
			return
		}
		if len(idx) > 0 || done {
			if err := q.send(&api.FileRequest{Id: q.id, Indexes: idx, Done: done}); err != nil {
				q.errc <- err
				return
			}
			if done {
				return
			}
			continue
		}
		select {
		case <-q.notify:
		case <-ctx.Done():
			// Receive is failing; it calls abort, which wakes us.
			<-q.notify
		}
	}
}
