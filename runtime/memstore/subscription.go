package memstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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
	sub := &subscription{b: b, t: t, log: t.log, prefix: req.Prefix, w: backend.NewWaiter()}
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
	b.obs.Readers(st.id, tenant, 1)
	return sub, nil
}

// subscription is one reader's position in a tenant's event log. It reads the log without
// the backend's lock while the next event is there and fresh; it takes the lock only to report
// an overflow: when the events it needs left the log, by the MaxEvents limit or by age.
type subscription struct {
	b      *Backend
	t      *tenant
	log    *backend.Log // t.log, read without the lock
	prefix string
	start  backend.Cursor

	closeOnce sync.Once
	shut      atomic.Bool     // set by Close
	w         *backend.Waiter // how Next waits; Close and the backend's Close signal it

	// Owned by the goroutine that calls Next.
	pos  uint64 // seq of the last event passed (delivered or filtered out)
	lost bool   // the start cursor is of another epoch: an overflow comes first
	// now is a reading of the clock, by which the events passed are within the retention;
	// it is read again after checks more events, and after every wait.
	now    int64
	checks int

	beforeWait func() // a test's hook, run by next before it gets the channel to wait on
}

// recheck is how many events a subscription passes on one reading of the clock while it
// reads without waiting. A reader that stops calling Next for longer than the retention may
// thus get up to that many events that are older than the retention before its overflow: the
// price of not reading the clock for every event.
const recheck = 64

// Start returns the position the subscription started after.
func (s *subscription) Start() backend.Cursor { return s.start }

// Next returns the next event with the subscription's prefix, waiting for it if needed (see
// next), and reports it to the backend's observer.
func (s *subscription) Next(ctx context.Context) (*backend.Event, error) {
	ev, err := s.next(ctx)
	if ev != nil && s.b.observed {
		s.b.obs.Delivered(s.t.st.id, s.t.name, ev.Kind, time.Duration(s.b.now()-ev.At)*time.Millisecond)
	}
	return ev, err
}

// next returns the next event with the subscription's prefix, waiting for it if needed. The
// event is the one in the tenant's log, shared with the other readers.
func (s *subscription) next(ctx context.Context) (*backend.Event, error) {
	retention := s.t.st.retention
	for {
		if s.shut.Load() || s.b.down.Load() {
			return nil, backend.ErrClosed
		}
		if s.lost {
			if ev, err := s.overflow(); ev != nil || err != nil {
				return ev, err
			}
			continue
		}
		ev, wait := s.log.At(s.pos + 1)
		switch {
		case ev != nil:
			if s.checks == 0 {
				s.now, s.checks = s.b.now(), recheck
			}
			s.checks--
			if ev.At < s.now-retention { // older than the retention: gone
				if ev, err := s.overflow(); ev != nil || err != nil {
					return ev, err
				}
				continue
			}
			s.pos++
			if strings.HasPrefix(ev.Key, s.prefix) {
				return ev, nil
			}
			continue
		case !wait:
			if ev, err := s.overflow(); ev != nil || err != nil {
				return ev, err
			}
			continue
		}
		if s.beforeWait != nil {
			s.beforeWait()
		}
		// Register, then check again: an append (and its wake-up) since the check above
		// either shows here, as the event or as the event gone, or signals s.w.
		s.log.Await(s.w)
		if _, wait := s.log.At(s.pos + 1); !wait {
			continue
		}
		s.checks = 0
		if err := s.w.Wait(ctx, nil); err != nil {
			return nil, err
		}
	}
}

// overflow returns the overflow event of a subscription whose next event is gone, under the
// backend's lock. When the events are there after all (the log did not drop them yet), it
// returns nil, with the subscription's reading of the clock renewed: next reads them from the
// log again, without the lock (which the log takes to make an event).
func (s *subscription) overflow() (*backend.Event, error) {
	b, t := s.b, s.t
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || s.shut.Load() {
		return nil, backend.ErrClosed
	}
	now := b.now()
	t.trim(now)
	pos := t.cursor(s.pos)
	if s.lost {
		pos = s.start
	}
	if ev, ok := backend.Overflow(pos, t.epoch, t.first(), t.seq, now); ok {
		s.lost = false
		s.pos = ev.FirstAvailable.Seq
		return &ev, nil
	}
	s.now, s.checks = now, recheck
	return nil, nil
}

// Close ends the subscription; a blocked Next returns [backend.ErrClosed].
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.shut.Store(true)
		s.w.Release()
		b, t := s.b, s.t
		b.mu.Lock()
		defer b.mu.Unlock()
		t.readers--
		if b.closed {
			return // Close counted it out
		}
		b.obs.Readers(t.st.id, t.name, -1)
		t.last = max(t.last, b.now())
		if t.idle() {
			b.scheduleSweep(t)
			b.rearm()
		}
	})
	return nil
}
