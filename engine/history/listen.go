package history

import (
	"context"
	"slices"
)

// EventType says what happened to a record.
type EventType int

// The event types, as BuildKit's ListenBuildHistory names them.
const (
	EventStarted   EventType = iota + 1 // a build began (Record.Status is running)
	EventCompleted                      // a build finished, or an existing record is listed
	EventDeleted                        // a record was deleted
)

func (t EventType) String() string {
	switch t {
	case EventStarted:
		return "started"
	case EventCompleted:
		return "completed"
	case EventDeleted:
		return "deleted"
	}
	return "unknown"
}

// Event is one change of the history.
type Event struct {
	Type   EventType
	Record Record
}

// ListenOptions say which records Listen reports.
type ListenOptions struct {
	// Ref limits the events to one build.
	Ref string
	// ActiveOnly lists only the running builds first (not the finished
	// ones).
	ActiveOnly bool
	// Follow keeps listening, after the existing records, for builds
	// that start and finish and records deleted, until ctx ends.
	Follow bool
	// Limit, if positive, replays only the newest Limit finished builds
	// (BuildKit's BuildHistoryRequest.Limit, buildx history ls).
	Limit int
}

// Listen calls send with the existing records (finished ones oldest first
// as EventCompleted unless o.ActiveOnly, then the running ones as
// EventStarted) and, with o.Follow, with every later event until ctx ends
// (it then returns context.Cause(ctx)) or send fails. No event falls in
// between the two parts.
func (s *Service) Listen(ctx context.Context, o ListenOptions, send func(Event) error) error {
	f := Filter{Ref: o.Ref, Limit: o.Limit}
	var l *listener
	s.mu.Lock()
	var first []Event
	if !o.ActiveOnly {
		recs, err := s.List(ctx, f)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		slices.Reverse(recs)
		for _, r := range recs {
			first = append(first, Event{Type: EventCompleted, Record: r})
		}
	}
	for _, ref := range s.order {
		if r := s.active[ref]; f.match(r) {
			first = append(first, Event{Type: EventStarted, Record: r})
		}
	}
	if o.Follow {
		l = &listener{filter: f, wake: make(chan struct{}, 1)}
		s.listeners[l] = struct{}{}
	}
	s.mu.Unlock()
	if l != nil {
		defer func() {
			s.mu.Lock()
			delete(s.listeners, l)
			s.mu.Unlock()
		}()
	}
	for _, ev := range first {
		if err := send(ev); err != nil {
			return err
		}
	}
	if l == nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-l.wake:
		}
		s.mu.Lock()
		evs := l.queue
		l.queue = nil
		s.mu.Unlock()
		for _, ev := range evs {
			if err := send(ev); err != nil {
				return err
			}
		}
	}
}

// listener is one Listen call that follows; its queue is unbounded (builds
// are few) so that a slow listener never holds a build up.
type listener struct {
	filter Filter
	queue  []Event // guarded by Service.mu
	wake   chan struct{}
}

// notify queues ev for every listener it concerns. s.mu is held.
func (s *Service) notify(ev Event) {
	for l := range s.listeners {
		if !l.filter.match(ev.Record) {
			continue
		}
		l.queue = append(l.queue, ev)
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}
