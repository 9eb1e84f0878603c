package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// subscription is one reader's stream. It is fed by its tenant's pump while it keeps up; when
// its buffer is full, or the pump saw a gap or a new epoch, it is lagging and Next catches up
// by reading from Redis after its own position (with an overflow event when the events it
// needs are gone), until it has reached the pump.
type subscription struct {
	p      *pump
	prefix string
	start  backend.Cursor
	limit  int           // most buffered events
	wake   chan struct{} // signalled when events arrive, on lagging and on close

	mu      sync.Mutex
	pos     backend.Cursor  // position after the last event queued (or skipped by prefix)
	queue   []backend.Event // events for Next
	lagging bool            // events after pos must be read from Redis
	closed  bool
}

// Start implements [backend.Subscription].
func (s *subscription) Start() backend.Cursor { return s.start }

// Next implements [backend.Subscription]. Redis errors are retried with backoff, so a reader
// never sees a transient failure; it waits instead, until ctx is done.
func (s *subscription) Next(ctx context.Context) (backend.Event, error) {
	var delay time.Duration
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return backend.Event{}, backend.ErrClosed
		}
		if len(s.queue) > 0 {
			ev := s.queue[0]
			if ev.Kind != backend.EventOverflow && s.trimmed(ev) {
				// Read from the stream now, the reader would not get ev: it gets the overflow
				// the stream gives, as if it had not buffered anything.
				s.queue = nil
				s.pos = backend.Cursor{Epoch: ev.Epoch, Seq: ev.Version - 1}
				s.lagging = true
				s.mu.Unlock()
				continue
			}
			s.queue[0] = backend.Event{}
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return ev, nil
		}
		lagging, pos := s.lagging, s.pos
		s.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return backend.Event{}, err
		}
		wait := time.Duration(-1) // until woken
		if lagging {
			progress, err := s.catchUp(ctx, pos)
			switch {
			case err != nil:
				if ctx.Err() != nil {
					return backend.Event{}, ctx.Err()
				}
				if errors.Is(err, backend.ErrCorrupt) {
					return backend.Event{}, err // no retry mends junk; the next call reads again
				}
				delay = nextDelay(delay)
				wait = delay
			case progress:
				delay = 0
				continue
			default:
				wait = stalePoll // Redis has no more; the pump has not seen it yet
			}
		}
		if err := s.waitWake(ctx, wait); err != nil {
			return backend.Event{}, err
		}
	}
}

func (s *subscription) waitWake(ctx context.Context, d time.Duration) error {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-s.wake:
	case <-timeout:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// catchUp reads the events after pos from Redis and queues them, after an overflow event if
// the events right after pos are gone. It stops lagging once it has reached the pump. An entry
// of the stream that is not an event (junk added by another program) and a gap in the
// versions are skipped with an overflow, as lost events: the reader re-snapshots, and never
// waits for a version that cannot come. Junk that is no version (its ID's second part is not
// 0, beside a version read) or is beyond the tenant's last version is passed silently.
func (s *subscription) catchUp(ctx context.Context, pos backend.Cursor) (progress bool, err error) {
	r, err := runRead(ctx, s.p.b.client, s.p.keys, s.p.st.limits, pos, min(maxRead, s.limit))
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.pos != pos {
		return true, nil
	}
	if ov, ok := backend.Overflow(pos, r.epoch, r.first, r.head, r.now); ok {
		s.queue = append(s.queue, ov)
		s.pos = ov.FirstAvailable
		progress = true
	}
	for _, ev := range r.events {
		if ev.Version <= s.pos.Seq || ev.Version > r.head {
			continue
		}
		junk := ev.Kind == 0 || ev.Epoch != r.epoch
		if junk || ev.Version != s.pos.Seq+1 {
			fa := backend.Cursor{Epoch: r.epoch, Seq: ev.Version - 1}
			if junk {
				fa.Seq = ev.Version
			}
			s.skip(fa, r.now)
			progress = true
			if junk {
				continue
			}
		}
		s.accept(ev)
		progress = true
	}
	s.p.mu.Lock()
	caughtUp := s.pos.Epoch == s.p.epoch && s.pos.Seq >= s.p.head
	s.p.mu.Unlock()
	if caughtUp {
		s.lagging = false
	} else if !progress {
		s.p.nudge() // the pump has not seen the tenant's new epoch yet
	}
	return progress, nil
}

// skip moves the position to fa, with an overflow event: the reader lost the events between.
// Skips in a row make one overflow. s.mu is held.
func (s *subscription) skip(fa backend.Cursor, at int64) {
	if n := len(s.queue); n > 0 && s.queue[n-1].Kind == backend.EventOverflow && s.queue[n-1].FirstAvailable == s.pos {
		s.queue[n-1].FirstAvailable = fa
	} else {
		s.queue = append(s.queue, backend.Event{Kind: backend.EventOverflow, Epoch: fa.Epoch, At: at, After: s.pos, FirstAvailable: fa})
	}
	s.pos = fa
}

// trimmed reports whether ev is out of the stream's MaxEvents window, as far as the backend
// knows the tenant's last version. s.mu is held.
func (s *subscription) trimmed(ev backend.Event) bool {
	maxEvents := uint64(s.p.st.limits.MaxEvents)
	s.p.mu.Lock()
	head := max(s.p.head, s.p.written)
	s.p.mu.Unlock()
	return ev.Version+maxEvents <= head
}

// accept moves the position past ev and queues it if its key has the prefix. s.mu is held.
func (s *subscription) accept(ev backend.Event) {
	s.pos = ev.Cursor()
	if strings.HasPrefix(ev.Key, s.prefix) {
		s.queue = append(s.queue, ev)
	}
}

// push is the pump's delivery of the next events of the tenant. A subscription that cannot
// take them in order (a gap, another epoch, a full buffer) becomes lagging and catches up later.
func (s *subscription) push(events []backend.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.lagging {
		return
	}
	for _, ev := range events {
		if ev.Epoch == s.pos.Epoch && ev.Version <= s.pos.Seq {
			continue // already read from Redis
		}
		if ev.Epoch != s.pos.Epoch || ev.Version != s.pos.Seq+1 || len(s.queue) >= s.limit {
			s.lagging = true
			break
		}
		s.accept(ev)
	}
	s.signal()
}

func (s *subscription) markLagging() {
	s.mu.Lock()
	s.lagging = true
	s.mu.Unlock()
	s.signal()
}

func (s *subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// shut ends the subscription without detaching it from its pump; it reports whether it was
// open.
func (s *subscription) shut() bool {
	s.mu.Lock()
	was := !s.closed
	s.closed = true
	s.queue = nil
	s.mu.Unlock()
	s.signal()
	return was
}

// Close implements [backend.Subscription]: the pump stops when its last subscription closes.
func (s *subscription) Close() error {
	if s.shut() {
		s.p.b.detach(s)
	}
	return nil
}
