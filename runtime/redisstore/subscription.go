package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// subscription is one reader's stream. While it keeps up it reads its tenant's shared log,
// which the pump appends to ([backend.Log]): no copy and no wake-up of its own per event. When
// the event it needs is not in the log (it fell behind the log's window, the pump saw a gap,
// or the pump saw a new epoch and closed the log) it is lagging: Next catches up by reading
// from Redis after its own position (with an overflow event when the events it needs are gone)
// until it is back within the pump's log.
type subscription struct {
	p      *pump
	prefix string
	start  backend.Cursor
	limit  int             // most stream entries one catch-up read returns
	w      *backend.Waiter // how Next waits; shut signals it

	closeOnce sync.Once
	closed    atomic.Bool

	nextSub, prevSub *subscription // the pump's other subscriptions (see pump.join); guarded by p.mu

	// Owned by the goroutine that calls Next (and by Subscribe before it returns).
	pos   backend.Cursor   // position after the last event passed (delivered or skipped)
	log   *backend.Log     // the pump's log it reads; nil while lagging
	queue []*backend.Event // events read from Redis, for Next
	seen  *feedFailure     // the pump's last failure Next returned
	fork  uint64           // the pump's forks when the position was last checked against Redis

	beforeWait func() // a test's hook, run by next before it gets the channel to wait on
}

// Start implements [backend.Subscription].
func (s *subscription) Start() backend.Cursor { return s.start }

// Next implements [backend.Subscription] (see next), and reports the event to the backend's
// observer.
func (s *subscription) Next(ctx context.Context) (*backend.Event, error) {
	ev, err := s.next(ctx)
	if ev != nil && s.p.b.observed {
		s.p.b.obs.Delivered(s.p.key.id, s.p.key.tenant, ev.Kind, time.Since(time.UnixMilli(ev.At)))
	}
	return ev, err
}

// next returns the next event. The event it returns while the subscription keeps up is the one
// in the tenant's log, shared with the other readers. Redis errors are retried with backoff, so
// a reader never sees a transient failure; it waits instead, until ctx is done. Errors that
// retrying does not fix reach the reader, wrapping [ErrFeed], once they last failAfter: the
// pump's (see pump.fail) when it has no event to return, and those of its own catch-up reads.
func (s *subscription) next(ctx context.Context) (*backend.Event, error) {
	var delay time.Duration
	var failing time.Time // since when the catch-up reads fail with errors retries do not fix
	for {
		if s.closed.Load() {
			return nil, backend.ErrClosed
		}
		if len(s.queue) > 0 {
			ev := s.queue[0]
			if ev.Kind != backend.EventOverflow && s.trimmed(ev) {
				// Read from the stream now, the reader would not get ev: it gets the overflow
				// the stream gives, as if it had not buffered anything.
				s.queue = nil
				s.pos = backend.Cursor{Epoch: ev.Epoch, Seq: ev.Version - 1}
				continue
			}
			s.queue[0] = nil
			s.queue = s.queue[1:]
			return ev, nil
		}
		if l := s.log; l != nil {
			ev, wait := l.At(s.pos.Seq + 1)
			switch {
			case ev != nil && s.trimmed(ev):
				s.log = nil // out of the stream's MaxEvents window: Redis gives the overflow
			case ev != nil:
				s.pos = ev.Cursor()
				if strings.HasPrefix(ev.Key, s.prefix) {
					return ev, nil
				}
			case wait:
				if s.beforeWait != nil {
					s.beforeWait()
				}
				// Register, then check again: an append (and its wake-up) since the check
				// above either shows here, as the event or as the event gone (dropped or the
				// log closed), or signals s.w.
				l.Await(s.w)
				if _, wait := l.At(s.pos.Seq + 1); !wait {
					continue
				}
				if err := s.feedErr(); err != nil {
					return nil, err
				}
				if err := s.w.Wait(ctx, nil); err != nil {
					return nil, err
				}
			default:
				s.log = nil // gone from the log, or the log is closed: catch up from Redis
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		progress, err := s.catchUp(ctx)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			switch {
			case errors.Is(err, backend.ErrCorrupt):
				return nil, err // no retry mends junk; the next call reads again
			case transient(err):
				failing = time.Time{}
			case failing.IsZero():
				failing = time.Now()
			case time.Since(failing) >= failAfter:
				return nil, feedError(s.p.keys, err)
			}
			delay = nextDelay(delay)
			wait = delay
		case progress:
			delay, failing = 0, time.Time{}
			continue
		default:
			failing = time.Time{}
			wait = stalePoll // Redis has no more; the pump has not seen it yet
		}
		if err := s.feedErr(); err != nil {
			return nil, err
		}
		if err := s.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// feedErr returns the pump's failure if the subscription has not returned it yet.
func (s *subscription) feedErr() error {
	f := s.p.failure.Load()
	if f == nil || f == s.seen {
		return nil
	}
	s.seen = f
	return f.err
}

// sleep waits for d, for the pump's next append or until the subscription is shut.
func (s *subscription) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	s.p.currentLog().Await(s.w)
	return s.w.Wait(ctx, t.C)
}

// catchUp reads the events after the subscription's position from Redis and queues them,
// after an overflow event if the events right after it are gone. It goes back to the pump's
// log once its position is within the log. An entry of the stream that is not an event (junk
// added by another program) and a gap in the versions are skipped with an overflow, as lost
// events: the reader re-snapshots, and never waits for a version that cannot come. Junk that
// is no version (its ID's second part is not 0, beside a version read) or is beyond the
// tenant's last version is passed silently.
func (s *subscription) catchUp(ctx context.Context) (progress bool, err error) {
	pos := s.pos
	// After the tenant's history went back (a failover to a replica that lacked the last
	// writes), a position of its epoch may be of the history that is gone, at a version
	// Redis issued again for another event: read from the start of what Redis has, after an
	// overflow.
	fork := s.p.forks.Load()
	forked := fork != s.fork && pos.Seq > 0
	if forked {
		pos.Seq = 0
	}
	s.p.b.obs.CatchUp(s.p.key.id, s.p.key.tenant)
	r, err := runRead(ctx, s.p.b.scripts, s.p.keys, s.p.st.limits, pos, min(maxRead, s.limit))
	if err != nil {
		s.p.b.failed(s.p.key, "read", err)
		return false, err
	}
	s.fork = fork
	if ov, ok := backend.Overflow(pos, r.epoch, r.first, r.head, r.now); ok || forked && r.epoch == pos.Epoch {
		if !ok {
			ov = backend.Event{Kind: backend.EventOverflow, Epoch: r.epoch, At: r.now, FirstAvailable: pos}
		}
		ov.After = s.pos
		s.queue = append(s.queue, &ov)
		s.pos = ov.FirstAvailable
		progress = true
	}
	for i := range r.events {
		ev := &r.events[i]
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
		s.pos = ev.Cursor()
		if strings.HasPrefix(ev.Key, s.prefix) {
			s.queue = append(s.queue, ev)
		}
		progress = true
	}
	if l := s.p.currentLog(); l.Epoch() == s.pos.Epoch && s.pos.Seq+1 >= l.First() && !l.Closed() {
		s.log = l // what follows is in the log, or yet to come
	} else if !progress && l.Epoch() != s.pos.Epoch {
		s.p.nudge() // the pump has not seen the tenant's new epoch yet
	}
	return progress, nil
}

// skip moves the position to fa, with an overflow event: the reader lost the events between.
// Skips in a row make one overflow (the queue holds only events read from Redis, which are the
// subscription's own).
func (s *subscription) skip(fa backend.Cursor, at int64) {
	if n := len(s.queue); n > 0 && s.queue[n-1].Kind == backend.EventOverflow && s.queue[n-1].FirstAvailable == s.pos {
		s.queue[n-1].FirstAvailable = fa
	} else {
		s.queue = append(s.queue, &backend.Event{Kind: backend.EventOverflow, Epoch: fa.Epoch, At: at, After: s.pos, FirstAvailable: fa})
	}
	s.pos = fa
}

// trimmed reports whether ev is out of the stream's MaxEvents window, as far as the backend
// knows the tenant's last version: the pump's, or that of its own last write.
func (s *subscription) trimmed(ev *backend.Event) bool {
	head := max(s.p.written.Load(), s.p.currentLog().Head())
	return ev.Version+uint64(s.p.st.limits.MaxEvents) <= head
}

// shut ends the subscription without detaching it from its pump; it reports whether it was
// open.
func (s *subscription) shut() bool {
	was := false
	s.closeOnce.Do(func() {
		was = true
		s.closed.Store(true)
		s.w.Release()
	})
	return was
}

// Close implements [backend.Subscription]: the pump stops when its last subscription closes.
func (s *subscription) Close() error {
	if s.shut() {
		s.p.b.detach(s)
	}
	return nil
}
