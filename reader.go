package ephemeral

import (
	"context"
	"errors"
	"iter"
	"runtime"
	"sync/atomic"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// Reader is a stream of one tenant's events, from [Store.Reader]. Recv and Events are for one
// goroutine at a time; Cursor and Close may be called from any goroutine.
//
// The readers of a tenant in a process share one log of its events, and each event is decoded
// once for all of them; every reader still gets a value of its own. An event's Value, and the
// slices, maps and pointers inside it, belong to the reader that received it: it may keep and
// modify them, and no other reader (nor the store, nor a [Mirror]) sees the change. The copy
// is made with the codec's Clone method (see [Codec]), or by assignment when T is flat (see
// the package doc); with a codec that has none, each reader decodes a value that is not flat
// itself.
type Reader[K, T any] struct {
	s   *Store[K, T]
	sub backend.Subscription

	pos position // the cursor of the last event received
	// value is where Recv makes an upsert's value when T is not flat, from the first such
	// event on: most readers of an idle tenant never need it. Owned by Recv.
	value *T
}

// Recv blocks until the next event, ctx is done (it returns ctx.Err()) or the reader is closed
// ([ErrClosed]). An event whose key does not parse as K (written by another program) is
// returned with the zero key and an error wrapping [ErrInvalidKey]; an upsert whose value the
// codec cannot decode, with the zero Value and an error wrapping [ErrDecode]. In both cases the
// reader has moved past the event and the next Recv goes on. When the backend finds junk in
// the tenant's data (written by another program), Recv returns an error wrapping [ErrCorrupt]
// rather than waiting; the next Recv reads again.
func (r *Reader[K, T]) Recv(ctx context.Context) (ev Event[K, T], err error) {
	raw, err := r.sub.Next(ctx)
	if err != nil {
		return ev, err
	}
	m := r.s.decoded(raw)
	r.pos.set(raw.Cursor())
	if r.s.flat || m.err != nil || raw.Kind != EventUpsert {
		return m.ev, m.err // a flat value is copied with the event
	}
	ev = m.ev
	// The copy is made in r.value, not in ev: the codec's Clone, called through a func value,
	// would move ev to the heap, an allocation per event.
	if r.value == nil {
		r.value = new(T)
	}
	if err := r.s.copyValue(r.value, &m.ev.Value, raw); err != nil {
		// copyValue fails only to decode, which it does only without a Clone, when m.ev holds
		// no decoded value: ev.Value is the zero T.
		return ev, err
	}
	ev.Value = *r.value
	return ev, nil
}

// TryRecv is Recv without waiting: ok is false, with a nil error, when no event is ready in
// this process and Recv would wait for one (or read the backend for it); otherwise ev and err
// are what Recv returns. A reader that writes its events to a network connection can write
// those that are ready together, with one flush: Recv, then TryRecv until ok is false.
func (r *Reader[K, T]) TryRecv() (ev Event[K, T], ok bool, err error) {
	ev, err = r.Recv(doneCtx)
	if errors.Is(err, context.Canceled) { // doneCtx's: nothing else cancels it
		return ev, false, nil
	}
	return ev, true, err
}

// doneCtx is a context that is done: with it a subscription's Next returns an event that is
// ready, and ctx.Err() instead of waiting for one (see [backend.Subscription]).
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Events returns an iterator over the reader's events. It stops when ctx is done or the reader
// is closed, after yielding that error, or when the loop breaks. Key and decode errors (see
// Recv) are yielded and the iteration goes on.
func (r *Reader[K, T]) Events(ctx context.Context) iter.Seq2[Event[K, T], error] {
	return func(yield func(Event[K, T], error) bool) {
		for {
			ev, err := r.Recv(ctx)
			if !yield(ev, err) {
				return
			}
			if err != nil && !errors.Is(err, ErrDecode) && !errors.Is(err, ErrInvalidKey) {
				return
			}
		}
	}
}

// Cursor returns the cursor of the last event received, or the reader's start position before
// the first one. A reader started [After] it continues where this one stopped.
func (r *Reader[K, T]) Cursor() string {
	return r.pos.get().String()
}

// Close stops the reader; a blocked Recv returns [ErrClosed]. Close is idempotent.
func (r *Reader[K, T]) Close() error { return r.sub.Close() }

// decodedEvent is what the readers of a store share of one backend event: the typed event,
// with, for an upsert, the decoded value, which a reader gets as it is only when T is flat,
// else a copy of (see copyValue). err is the key's or the value's error.
type decodedEvent[K, T any] struct {
	ev  Event[K, T]
	err error
}

// decoded returns the decoded form of raw: the one in raw's memo, computed by the first
// reader of the store that received raw, or a new one.
func (s *Store[K, T]) decoded(raw *backend.Event) *decodedEvent[K, T] {
	if d, ok := raw.Memo.Load(s).(*decodedEvent[K, T]); ok {
		return d
	}
	d := &decodedEvent[K, T]{ev: Event[K, T]{
		Kind:    raw.Kind,
		Cursor:  raw.Cursor().String(),
		Version: raw.Version,
		At:      msTime(raw.At),
		Reason:  raw.Reason,
	}}
	switch {
	case raw.Kind == EventOverflow:
		d.ev.After = raw.After.String()
		return d // never in a memo
	case raw.ExpiresAt != 0:
		d.ev.ExpiresAt = msTime(raw.ExpiresAt)
	}
	d.ev.Key, d.err = s.parseKey(raw.Key)
	if d.err == nil && raw.Kind == EventUpsert {
		d.ev.CreatedAt = msTime(raw.CreatedAt)
		if s.clone != nil { // else each reader decodes its own value
			e := raw.Entry()
			if d.err = s.decode(&e, &d.ev.Value); d.err != nil {
				var zero T
				d.ev.Value = zero
			}
		}
	}
	if m, ok := raw.Memo.Store(s, d).(*decodedEvent[K, T]); ok {
		return m
	}
	return d
}

// copyValue sets *dst to a value of the caller's own equal to shared, the decoded value of
// raw (an upsert): a copy of shared (by assignment when T is flat, else by the codec's
// Clone), or else raw's value decoded anew.
func (s *Store[K, T]) copyValue(dst, shared *T, raw *backend.Event) error {
	var zero T
	*dst = zero
	if s.clone != nil {
		s.clone(dst, shared)
		return nil
	}
	e := raw.Entry()
	return s.decode(&e, dst)
}

// position is a cursor written by one goroutine and read by any, without a lock and, while its
// epoch stays the same, without writing a pointer (which costs a write barrier whenever the
// garbage collector runs): the epoch changes under a sequence lock, the seq alone atomically.
type position struct {
	gen   atomic.Uint64 // odd while the epoch changes
	epoch atomic.Pointer[string]
	seq   atomic.Uint64
}

// set records c; it is called by one goroutine at a time.
func (p *position) set(c backend.Cursor) {
	if e := p.epoch.Load(); e != nil && *e == c.Epoch {
		p.seq.Store(c.Seq)
		return
	}
	epoch := c.Epoch
	p.gen.Add(1)
	p.epoch.Store(&epoch)
	p.seq.Store(c.Seq)
	p.gen.Add(1)
}

// get returns the cursor last set.
func (p *position) get() backend.Cursor {
	for {
		g := p.gen.Load()
		if g%2 == 1 {
			runtime.Gosched()
			continue
		}
		e, seq := p.epoch.Load(), p.seq.Load()
		if p.gen.Load() == g {
			return backend.Cursor{Epoch: *e, Seq: seq}
		}
	}
}
