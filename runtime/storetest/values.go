package storetest

import (
	"context"
	"fmt"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/google/go-cmp/cmp"
)

// testValuesOwned checks the readers' rule of the typed API: the value of an event belongs to
// the reader that received it. Readers of a tenant share the backend's event and its decoded
// value; reader A modifies the slice, map and pointer inside its value, and reader B, a reader
// that starts later, and a mirror still see the value as written. With a codec that has a
// Clone and with one that has none.
func testValuesOwned(e *env) {
	for i, codec := range []ephemeral.Codec[nested]{nestedCodec{}, nestedDecoder{}} {
		s, err := ephemeral.New(e.h.Backend, ephemeral.Config[string, nested]{ID: fmt.Sprint(e.id, "-", i), TTL: longTTL, Codec: codec})
		if err != nil {
			e.Fatalf("ephemeral.New: %v", err)
		}
		snap, err := s.Snapshot(e.ctx)
		if err != nil {
			e.Fatal(err)
		}
		changed := make(chan ephemeral.Change[string, nested], 1)
		m, err := s.Mirror(func(c ephemeral.Change[string, nested]) { changed <- c },
			ephemeral.WithMirrorClock(func() time.Time { return time.Unix(0, 0) })) // never hide an entry
		if err != nil {
			e.Fatal(err)
		}
		defer m.Close()
		if err := m.Ready(e.ctx); err != nil {
			e.Fatal(err)
		}
		a, b := e.deepReader(s), e.deepReader(s)
		written := newNested()
		if _, err := s.Upsert(e.ctx, "k", written); err != nil {
			e.Fatal(err)
		}
		scribble(&written) // the writer's value is not the readers' either
		want := func(who string, v nested) {
			e.Helper()
			if diff := cmp.Diff(newNested(), v); diff != "" {
				e.Fatalf("codec %T: %s sees a value other than the one written (-want +got):\n%s", codec, who, diff)
			}
		}
		va := e.deepRecv(a)
		want("reader A", va)
		scribble(&va)
		va.Tags = append(va.Tags, "more")
		want("reader B", e.deepRecv(b))
		want("a later reader", e.deepRecv(e.deepReader(s, ephemeral.After(snap.Cursor))))
		select {
		case c := <-changed:
			want("the mirror's change", c.Entry.Value)
		case <-e.ctx.Done():
			e.Fatal(e.ctx.Err())
		}
		got, ok := m.Get("k")
		if !ok {
			e.Fatal("the mirror lacks the key")
		}
		want("the mirror", got.Value)
		got.Value.Tags[0] = "changed by a mirror user"
		want("a reader after a mirror user's change", e.deepRecv(e.deepReader(s, ephemeral.After(snap.Cursor))))
	}
}

func (e *env) deepReader(s *ephemeral.Store[string, nested], opts ...ephemeral.ReaderOption) *ephemeral.Reader[string, nested] {
	e.Helper()
	r, err := s.Reader(e.ctx, opts...)
	if err != nil {
		e.Fatalf("Reader: %v", err)
	}
	e.Cleanup(func() { r.Close() })
	return r
}

func (e *env) deepRecv(r *ephemeral.Reader[string, nested]) nested {
	e.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitFor)
	defer cancel()
	ev, err := r.Recv(ctx)
	if err != nil || ev.Kind != ephemeral.EventUpsert {
		e.Fatalf("Recv: %+v, %v; want an upsert", ev, err)
	}
	return ev.Value
}
