package memstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// Subscribe starts a stream of the tenant's events; see [backend.Store]. A cursor of another
// epoch yields an overflow event first; a cursor of this epoch beyond the last event is an error
// wrapping [backend.ErrInvalidCursor].
func (st *store) Subscribe(ctx context.Context, tenant string, req backend.SubscribeRequest) (backend.Subscription, error) {
	b := st.b
	now, err := b.lockReconciled(ctx)
	if err != nil {
		return nil, err
	}
	defer b.unlock()
	t := st.tenant(tenant, now)
	sub := &subscription{b: b, t: t, prefix: req.Prefix, closed: make(chan struct{})}
	switch {
	case req.After == nil:
		sub.pos = t.seq
		sub.start = t.cursor(t.seq)
	case req.After.Epoch != t.epoch:
		sub.start = *req.After
		sub.lost = true
	case req.After.Seq > t.seq:
		return nil, fmt.Errorf("%w: %s is beyond the last event %d", backend.ErrInvalidCursor, req.After, t.seq)
	default:
		sub.pos = req.After.Seq
		sub.start = *req.After
	}
	t.readers++
	return sub, nil
}

// subscription is one reader's position in a tenant's event log.
type subscription struct {
	b      *Backend
	t      *tenant
	prefix string
	start  backend.Cursor

	closeOnce sync.Once
	closed    chan struct{}

	// Guarded by b.mu.
	pos  uint64 // seq of the last event passed (delivered or filtered out)
	lost bool   // the start cursor is of another epoch: an overflow comes first
}

// Start returns the position the subscription started after.
func (s *subscription) Start() backend.Cursor { return s.start }

// Next returns the next event with the subscription's prefix, waiting for it if needed.
func (s *subscription) Next(ctx context.Context) (backend.Event, error) {
	for {
		ev, now, wait, err := s.next()
		if err == nil && wait == nil { // outside the lock: the observer's time is its own
			s.b.obs.Delivered(s.t.st.id, s.t.name, ev.Kind, time.Duration(now-ev.At)*time.Millisecond)
		}
		if err != nil || wait == nil {
			return ev, err
		}
		select {
		case <-wait:
		case <-s.closed:
			return backend.Event{}, backend.ErrClosed
		case <-s.b.done:
			return backend.Event{}, backend.ErrClosed
		case <-ctx.Done():
			return backend.Event{}, ctx.Err()
		}
	}
}

// next returns the next event, if there is one, and the time it looked, or else a channel
// that is closed when the tenant gets a new event.
func (s *subscription) next() (backend.Event, int64, <-chan struct{}, error) {
	b, t := s.b, s.t
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || s.isClosed() {
		return backend.Event{}, 0, nil, backend.ErrClosed
	}
	now := b.now()
	t.trim(now)
	first := t.first()
	pos := t.cursor(s.pos)
	if s.lost {
		pos = s.start
	}
	if ev, ok := backend.Overflow(pos, t.epoch, first, t.seq, now); ok {
		s.lost = false
		s.pos = ev.FirstAvailable.Seq
		return ev, now, nil, nil
	}
	for s.pos < t.seq {
		s.pos++
		if ev := t.log.at(int(s.pos - first)); strings.HasPrefix(ev.Key, s.prefix) {
			return *ev, now, nil, nil
		}
	}
	return backend.Event{}, now, t.wait(), nil
}

func (s *subscription) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Close ends the subscription; a blocked Next returns [backend.ErrClosed].
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		b, t := s.b, s.t
		b.mu.Lock()
		defer b.mu.Unlock()
		t.readers--
		if b.closed {
			return
		}
		t.last = max(t.last, b.now())
		if t.idle() {
			b.scheduleSweep(t)
			b.rearm()
		}
	})
	return nil
}
