package ephemeral

import (
	"context"
	"errors"
	"iter"
	"sync"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// Reader is a stream of one tenant's events, from [Store.Reader]. Recv and Events are for one
// goroutine at a time; Cursor and Close may be called from any goroutine.
type Reader[K, T any] struct {
	s   *Store[K, T]
	sub backend.Subscription

	mu     sync.Mutex
	cursor string
}

// Recv blocks until the next event, ctx is done (it returns ctx.Err()) or the reader is closed
// ([ErrClosed]). An event whose key does not parse as K (written by another program) is
// returned with the zero key and an error wrapping [ErrInvalidKey]; an upsert whose value the
// codec cannot decode, with a nil Entry and an error wrapping [ErrDecode]. In both cases the
// reader has moved past the event and the next Recv goes on. When the backend finds junk in
// the tenant's data (written by another program), Recv returns an error wrapping [ErrCorrupt]
// rather than waiting; the next Recv reads again.
func (r *Reader[K, T]) Recv(ctx context.Context) (Event[K, T], error) {
	raw, err := r.sub.Next(ctx)
	if err != nil {
		return Event[K, T]{}, err
	}
	ev := Event[K, T]{
		Kind:    raw.Kind,
		Cursor:  raw.Cursor().String(),
		Version: raw.Version,
		At:      msTime(raw.At),
		Reason:  raw.Reason,
	}
	r.mu.Lock()
	r.cursor = ev.Cursor
	r.mu.Unlock()
	if raw.Kind == EventOverflow {
		ev.After, ev.FirstAvailable = raw.After.String(), raw.FirstAvailable.String()
		return ev, nil
	}
	if raw.ExpiresAt != 0 {
		ev.ExpiresAt = msTime(raw.ExpiresAt)
	}
	if ev.Key, err = r.s.parseKey(raw.Key); err != nil {
		return ev, err
	}
	if raw.Kind == EventUpsert {
		e := raw.Entry()
		var v T
		if err := r.s.decode(&e, &v); err != nil {
			return ev, err
		}
		entry := entry(ev.Key, v, &e)
		ev.Entry = &entry
	}
	return ev, nil
}

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
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cursor
}

// Close stops the reader; a blocked Recv returns [ErrClosed]. Close is idempotent.
func (r *Reader[K, T]) Close() error { return r.sub.Close() }
