package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ephemeral-go/ephemeral"
)

// deep is a value with a slice, a map and a pointer, the parts a reader could share with
// another by mistake.
type deep struct {
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
	N     *int              `json:"n"`
}

// deepCodec is deep's codec, with a Clone, as ephemeralgen generates them. (encoding/json is
// fine for a test.)
type deepCodec struct{}

func (deepCodec) Encode(dst []byte, v *deep) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

func (deepCodec) Decode(src []byte, v *deep) error { return json.Unmarshal(src, v) }

func (deepCodec) Clone(dst, src *deep) {
	*dst = *src
	dst.Tags = slices.Clone(src.Tags)
	dst.Attrs = maps.Clone(src.Attrs)
	if src.N != nil {
		n := *src.N
		dst.N = &n
	}
}

// decodeOnly is deepCodec without its Clone: every reader decodes.
type decodeOnly struct{ c deepCodec }

func (d decodeOnly) Encode(dst []byte, v *deep) ([]byte, error) { return d.c.Encode(dst, v) }
func (d decodeOnly) Decode(src []byte, v *deep) error           { return d.c.Decode(src, v) }

// testValuesOwned checks the readers' rule of the typed API: the value of an event belongs to
// the reader that received it. Readers of a tenant share the backend's event and its decoded
// value; reader A modifies the slice, map and pointer inside its value, and reader B, a reader
// that starts later, and a mirror still see the value as written. With a codec that has a
// Clone and with one that has none.
func testValuesOwned(e *env) {
	for i, codec := range []ephemeral.Codec[deep]{deepCodec{}, decodeOnly{}} {
		s, err := ephemeral.New(e.h.Backend, ephemeral.Config[string, deep]{ID: fmt.Sprint(e.id, "-", i), TTL: longTTL, Codec: codec})
		if err != nil {
			e.Fatalf("ephemeral.New: %v", err)
		}
		snap, err := s.Snapshot(e.ctx)
		if err != nil {
			e.Fatal(err)
		}
		changed := make(chan ephemeral.Change[string, deep], 1)
		m, err := s.Mirror(func(c ephemeral.Change[string, deep]) { changed <- c },
			ephemeral.WithMirrorClock(func() time.Time { return time.Unix(0, 0) })) // never hide an entry
		if err != nil {
			e.Fatal(err)
		}
		defer m.Close()
		if err := m.Ready(e.ctx); err != nil {
			e.Fatal(err)
		}
		a, b := e.deepReader(s), e.deepReader(s)
		n := 7
		if _, err := s.Upsert(e.ctx, "k", deep{Tags: []string{"a", "b"}, Attrs: map[string]string{"x": "1"}, N: &n}); err != nil {
			e.Fatal(err)
		}
		n = 8 // the writer's value is not the readers' either
		want := func(who string, v deep) {
			e.Helper()
			if !slices.Equal(v.Tags, []string{"a", "b"}) || len(v.Attrs) != 1 || v.Attrs["x"] != "1" || v.N == nil || *v.N != 7 {
				e.Fatalf("codec %T: %s sees %+v (N %v), want the value as written", codec, who, v, v.N)
			}
		}
		va := e.deepRecv(a)
		want("reader A", va)
		va.Tags[0], va.Attrs["x"], *va.N = "changed", "changed", 99
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

func (e *env) deepReader(s *ephemeral.Store[string, deep], opts ...ephemeral.ReaderOption) *ephemeral.Reader[string, deep] {
	e.Helper()
	r, err := s.Reader(e.ctx, opts...)
	if err != nil {
		e.Fatalf("Reader: %v", err)
	}
	e.Cleanup(func() { r.Close() })
	return r
}

func (e *env) deepRecv(r *ephemeral.Reader[string, deep]) deep {
	e.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitFor)
	defer cancel()
	ev, err := r.Recv(ctx)
	if err != nil || ev.Kind != ephemeral.EventUpsert {
		e.Fatalf("Recv: %+v, %v; want an upsert", ev, err)
	}
	return ev.Entry.Value
}
