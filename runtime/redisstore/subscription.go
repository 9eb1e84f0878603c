package redisstore

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime"
)

// subscription is one reader's stream. It is fed by its tenant's pump while it keeps up; when
// its buffer is full, or the pump saw a gap or a new epoch, it is lagging and Next catches up
// by reading from Redis after its own position (with an overflow event when the events it
// needs are gone), until it has reached the pump.
type subscription struct {
	p      *pump
	scope  runtime.Scope
	prefix string
	start  runtime.Cursor
	limit  int           // most buffered events
	wake   chan struct{} // signalled when events arrive, on lagging and on close

	mu      sync.Mutex
	pos     runtime.Cursor     // position after the last event queued (or skipped by prefix)
	queue   []runtime.RawEvent // events for Next
	lagging bool               // events after pos must be read from Redis
	closed  bool
}

// Start implements [runtime.Subscription].
func (s *subscription) Start() runtime.Cursor { return s.start }

// Next implements [runtime.Subscription]. Redis errors are retried with backoff, so a reader
// never sees a transient failure; it waits instead, until ctx is done.
func (s *subscription) Next(ctx context.Context) (runtime.RawEvent, error) {
	var delay time.Duration
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return runtime.RawEvent{}, runtime.ErrClosed
		}
		if len(s.queue) > 0 {
			ev := s.queue[0]
			if ev.Kind != runtime.EventOverflow && s.trimmed(ev) {
				// Read from the stream now, the reader would not get ev: it gets the overflow
				// the stream gives, as if it had not buffered anything.
				s.queue = nil
				s.pos = runtime.Cursor{Epoch: ev.Cursor.Epoch, Seq: ev.Version - 1}
				s.lagging = true
				s.mu.Unlock()
				continue
			}
			s.queue[0] = runtime.RawEvent{}
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return ev, nil
		}
		lagging, pos := s.lagging, s.pos
		s.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return runtime.RawEvent{}, err
		}
		wait := time.Duration(-1) // until woken
		if lagging {
			progress, err := s.catchUp(ctx, pos)
			switch {
			case err != nil:
				if ctx.Err() != nil {
					return runtime.RawEvent{}, ctx.Err()
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
			return runtime.RawEvent{}, err
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
// the events right after pos are gone. It stops lagging once it has reached the pump.
func (s *subscription) catchUp(ctx context.Context, pos runtime.Cursor) (progress bool, err error) {
	r, err := s.p.b.read(ctx, s.scope, s.p.keys, pos, min(readCount, s.limit))
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.pos != pos {
		return true, nil
	}
	// Overflow when the events after pos are gone: pos is of another epoch, older than the
	// oldest retained event, or newer than the tenant's last version (the state went back).
	if r.epoch != pos.Epoch || pos.Seq+1 < r.first || pos.Seq > r.head {
		fa := runtime.Cursor{Epoch: r.epoch, Seq: r.first - 1}
		s.queue = append(s.queue, runtime.RawEvent{
			Kind: runtime.EventOverflow, Cursor: fa, At: r.now, After: pos, FirstAvailable: fa,
		})
		s.pos = fa
		progress = true
	}
	for _, ev := range r.events {
		if ev.Cursor.Epoch != s.pos.Epoch || ev.Version != s.pos.Seq+1 {
			break
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

// trimmed reports whether ev is out of the stream's MaxEvents window, as far as the backend
// knows the tenant's last version. s.mu is held.
func (s *subscription) trimmed(ev runtime.RawEvent) bool {
	maxEvents := uint64(s.scope.Limits.WithDefaults().MaxEvents)
	s.p.mu.Lock()
	head := max(s.p.head, s.p.written)
	s.p.mu.Unlock()
	return ev.Version+maxEvents <= head
}

// accept moves the position past ev and queues it if its key has the prefix. s.mu is held.
func (s *subscription) accept(ev runtime.RawEvent) {
	s.pos = ev.Cursor
	if strings.HasPrefix(ev.Key, s.prefix) {
		s.queue = append(s.queue, ev)
	}
}

// push is the pump's delivery of the next events of the tenant. A subscription that cannot
// take them in order (a gap, another epoch, a full buffer) becomes lagging and catches up later.
func (s *subscription) push(events []runtime.RawEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.lagging {
		return
	}
	for _, ev := range events {
		if ev.Cursor.Epoch == s.pos.Epoch && ev.Version <= s.pos.Seq {
			continue // already read from Redis
		}
		if ev.Cursor.Epoch != s.pos.Epoch || ev.Version != s.pos.Seq+1 || len(s.queue) >= s.limit {
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

// Close implements [runtime.Subscription]: the pump stops when its last subscription closes.
func (s *subscription) Close() error {
	if s.shut() {
		s.p.b.detach(s)
	}
	return nil
}
