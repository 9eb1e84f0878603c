package runtime

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
)

// Reader is a stream of one tenant's events, from [Store.Reader]. Recv and Events are for one
// goroutine at a time; Cursor and Close may be called from any goroutine.
type Reader[T any] struct {
	codec Codec[T]
	sub   Subscription

	mu     sync.Mutex
	cursor string
}

func newReader[T any](s *Store[T], sub Subscription, after *Cursor) *Reader[T] {
	start := sub.Start()
	if after != nil {
		start = *after
	}
	return &Reader[T]{codec: s.codec, sub: sub, cursor: start.String()}
}

// Recv blocks until the next event, ctx is done (it returns ctx.Err()) or the reader is closed
// ([ErrClosed]). A value the codec cannot decode is returned as an error wrapping [ErrDecode]
// together with the event (Entry nil); the reader has moved past it and the next Recv goes on.
func (r *Reader[T]) Recv(ctx context.Context) (Event[T], error) {
	raw, err := r.sub.Next(ctx)
	if err != nil {
		return Event[T]{}, err
	}
	ev := Event[T]{
		Kind:      raw.Kind,
		Cursor:    raw.Cursor.String(),
		Key:       raw.Key,
		Version:   raw.Version,
		At:        raw.At,
		ExpiresAt: raw.ExpiresAt,
		Reason:    raw.Reason,
	}
	if raw.Kind == EventOverflow {
		ev.After = raw.After.String()
		ev.FirstAvailable = raw.FirstAvailable.String()
	}
	r.mu.Lock()
	r.cursor = ev.Cursor
	r.mu.Unlock()
	if raw.Kind == EventUpsert {
		e := &Entry[T]{Key: raw.Entry.Key, Version: raw.Entry.Version, CreatedAt: raw.Entry.CreatedAt, UpdatedAt: raw.Entry.UpdatedAt, ExpiresAt: raw.Entry.ExpiresAt}
		if err := r.codec.Decode(raw.Entry.Value, &e.Value); err != nil {
			return ev, fmt.Errorf("%w: key %q version %d: %w", ErrDecode, raw.Key, raw.Version, err)
		}
		ev.Entry = e
	}
	return ev, nil
}

// Events returns an iterator over the reader's events. It stops when ctx is done or the reader
// is closed, after yielding that error, or when the loop breaks. Decode errors are yielded and
// the iteration goes on.
func (r *Reader[T]) Events(ctx context.Context) iter.Seq2[Event[T], error] {
	return func(yield func(Event[T], error) bool) {
		for {
			ev, err := r.Recv(ctx)
			if !yield(ev, err) {
				return
			}
			if err != nil && !errors.Is(err, ErrDecode) {
				return
			}
		}
	}
}

// Cursor returns the cursor of the last event received, or the reader's start position before
// the first one. A reader started [After] it continues where this one stopped.
func (r *Reader[T]) Cursor() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cursor
}

// Close stops the reader; a blocked Recv returns [ErrClosed]. Close is idempotent.
func (r *Reader[T]) Close() error { return r.sub.Close() }
