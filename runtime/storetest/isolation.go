package storetest

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/jsonc"
	"github.com/google/go-cmp/cmp"
)

// nested is a value with a slice, a map and a pointer: what a caller may modify in a value it
// was handed.
type nested struct {
	Tags  []string       `json:"tags"`
	Attrs map[string]int `json:"attrs"`
	Note  *string        `json:"note"`
}

// nestedCodec is a codec of nested values with a deep copy, as generated codecs have.
type nestedCodec struct{ nestedDecoder }

// Clone makes *dst a deep copy of *src.
func (nestedCodec) Clone(dst, src *nested) {
	*dst = nested{Tags: slices.Clone(src.Tags), Attrs: maps.Clone(src.Attrs)}
	if src.Note != nil {
		n := *src.Note
		dst.Note = &n
	}
}

// reusingCodec is a codec of nested values whose Clone reuses what *dst holds (its slice's
// array, its map, its pointer), as Clone may: the store must never pass it a *dst that shares
// memory with *src, or with a value handed out before.
type reusingCodec struct{ nestedDecoder }

// Clone makes *dst a deep copy of *src in the storage *dst has, where it has some.
func (reusingCodec) Clone(dst, src *nested) {
	dst.Tags = append(dst.Tags[:0], src.Tags...)
	if src.Tags == nil {
		dst.Tags = nil
	} else if dst.Tags == nil {
		dst.Tags = []string{} // src's is empty, not nil
	}
	switch {
	case src.Attrs == nil:
		dst.Attrs = nil
	case dst.Attrs == nil:
		dst.Attrs = maps.Clone(src.Attrs)
	default:
		clear(dst.Attrs)
		maps.Copy(dst.Attrs, src.Attrs)
	}
	switch {
	case src.Note == nil:
		dst.Note = nil
	case dst.Note == nil:
		n := *src.Note
		dst.Note = &n
	default:
		*dst.Note = *src.Note
	}
}

// batchCodec is reusingCodec with CloneFunc (see ephemeral.BatchCloner), which snapshots use:
// the tags of the copies carved from blocks they share, as generated codecs carve them, and
// what *dst holds reused, which the store must have zeroed.
type batchCodec struct{ reusingCodec }

// CloneFunc returns a Clone for a run of copies.
func (c batchCodec) CloneFunc() func(dst, src *nested) {
	var tags jsonc.Chunk[string]
	return func(dst, src *nested) {
		c.Clone(dst, src)
		dst.Tags = jsonc.CloneSlice(&tags, dst.Tags)
	}
}

// nestedDecoder is a codec of nested values without Clone.
type nestedDecoder struct{}

func (nestedDecoder) Encode(dst []byte, v *nested) ([]byte, error) {
	buf, err := json.Marshal(v)
	return append(dst, buf...), err
}

func (nestedDecoder) Decode(src []byte, v *nested) error { return json.Unmarshal(src, v) }

func newNested() nested {
	n := "note"
	return nested{Tags: []string{"a", "b"}, Attrs: map[string]int{"x": 1}, Note: &n}
}

// scribble modifies every slice, map and pointer of v in place.
func scribble(v *nested) {
	v.Tags[0] = "scribbled"
	v.Attrs["x"] = 99
	v.Attrs["new"] = 1
	*v.Note = "scribbled"
}

// testValueIsolation checks that no value handed to a caller shares memory with the store's
// state or with a value handed to another caller: a caller that modifies a slice, map or
// pointer inside a value from Upsert's argument, Get, Snapshot, a Reader or a Mirror changes
// nothing anyone else sees. It runs with a codec that has Clone, with one whose Clone reuses
// the storage of its destination, with one that has CloneFunc too (snapshots use it), and
// with one that has no Clone.
func testValueIsolation(e *env) {
	for _, c := range []struct {
		name  string
		codec ephemeral.Codec[nested]
	}{{"clone", nestedCodec{}}, {"clone-reusing", reusingCodec{}}, {"clone-func", batchCodec{}}, {"decode", nestedDecoder{}}} {
		e.Run(c.name, func(t *testing.T) { isolation(newEnv(t, e.h), c.codec) })
	}
}

func isolation(e *env, codec ephemeral.Codec[nested]) {
	s, err := ephemeral.New(e.h.Backend, ephemeral.Config[string, nested]{ID: e.id, TTL: longTTL, Codec: codec})
	if err != nil {
		e.Fatalf("ephemeral.New: %v", err)
	}
	want := newNested()
	check := func(what string, got nested) {
		e.Helper()
		if d := cmp.Diff(want, got); d != "" {
			e.Fatalf("%s (-want +got):\n%s", what, d)
		}
	}
	get := func(key string) nested {
		e.Helper()
		got, ok, err := s.Get(e.ctx, key)
		if err != nil || !ok {
			e.Fatalf("Get(%q): %v, found %v", key, err, ok)
		}
		return got.Value
	}

	v := newNested()
	ent, err := s.Upsert(e.ctx, "k1", v)
	if err != nil {
		e.Fatalf("Upsert: %v", err)
	}
	scribble(&v)
	scribble(&ent.Value)
	check("Get after the caller modified the value it upserted", get("k1"))

	g := get("k1")
	scribble(&g)
	check("Get after a caller modified the value of a Get", get("k1"))

	snap, err := s.Snapshot(e.ctx)
	if err != nil || len(snap.Entries) != 1 {
		e.Fatalf("Snapshot: %+v, %v; want 1 entry", snap, err)
	}
	scribble(&snap.Entries[0].Value)
	check("Get after a caller modified the value of a Snapshot", get("k1"))
	snap, err = s.Snapshot(e.ctx)
	if err != nil || len(snap.Entries) != 1 {
		e.Fatalf("Snapshot: %+v, %v; want 1 entry", snap, err)
	}
	check("a second Snapshot", snap.Entries[0].Value)

	// AppendSnapshot into the slice of an earlier snapshot: the earlier values stay as they
	// were, and an entry before dst's length is kept.
	kept := snap.Entries[0]
	again, err := s.AppendSnapshot(e.ctx, snap.Entries[:1])
	if err != nil || len(again.Entries) != 2 || again.Entries[0].Key != "k1" || again.Entries[1].Key != "k1" {
		e.Fatalf("AppendSnapshot after one entry: %+v, %v; want the kept entry and the live one", again, err)
	}
	reused, err := s.AppendSnapshot(e.ctx, again.Entries[:0])
	if err != nil || len(reused.Entries) != 1 || &reused.Entries[0] != &again.Entries[0] {
		e.Fatalf("AppendSnapshot into a reused slice: %+v, %v; want 1 entry in the same array", reused, err)
	}
	check("a value of an earlier snapshot whose slice an AppendSnapshot reused", kept.Value)
	scribble(&reused.Entries[0].Value)
	check("the value of an earlier snapshot after a caller modified the one of AppendSnapshot", kept.Value)
	check("Get after a caller modified the value of an AppendSnapshot", get("k1"))

	// Two readers of one upsert event.
	r1, r2 := e.readerOf(s), e.readerOf(s)
	if _, err := s.Upsert(e.ctx, "k2", newNested()); err != nil {
		e.Fatalf("Upsert: %v", err)
	}
	ev1, ev2 := e.recvNested(r1), e.recvNested(r2)
	scribble(&ev1.Value)
	check("the event of a second reader", ev2.Value)
	check("Get after a reader modified its event's value", get("k2"))

	// A mirror: its change callback, its change channel, Get and All. Its clock reads the
	// backend's time of the first upsert, so that it hides neither entry.
	changes := make(chan ephemeral.Change[string, nested], 2)
	m, err := s.Mirror(func(c ephemeral.Change[string, nested]) {
		scribble(&c.Entry.Value)
		changes <- c
	}, ephemeral.WithChangeChan(2), ephemeral.WithMirrorClock(func() time.Time { return ent.UpdatedAt }))
	if err != nil {
		e.Fatalf("Mirror: %v", err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(e.ctx, waitFor)
	defer cancel()
	if err := m.Ready(ctx); err != nil {
		e.Fatalf("Mirror.Ready: %v", err)
	}
	for range 2 {
		<-changes // both scribbled by the callback
		select {
		case c := <-m.Changes():
			check("a change on the mirror's channel after the callback modified its own", c.Entry.Value)
		case <-ctx.Done():
			e.Fatalf("no change on the mirror's channel")
		}
	}
	mg, ok := m.Get("k1")
	if !ok {
		e.Fatalf("Mirror.Get(k1): not found")
	}
	check("Mirror.Get after its change callback modified the value", mg.Value)
	scribble(&mg.Value)
	for key, me := range m.All() {
		check("Mirror.All of "+key+" after a caller modified the value of Mirror.Get", me.Value)
		scribble(&me.Value)
	}
	mg, _ = m.Get("k1")
	check("Mirror.Get after a caller modified the values of Mirror.All", mg.Value)
	check("Get after callers modified the mirror's values", get("k1"))
	check("Get after callers modified the mirror's values", get("k2"))
}

// readerOf opens a reader of a store of nested values that is closed when the case ends.
func (e *env) readerOf(s *ephemeral.Store[string, nested]) *ephemeral.Reader[string, nested] {
	e.Helper()
	r, err := s.Reader(e.ctx)
	if err != nil {
		e.Fatalf("Reader: %v", err)
	}
	e.Cleanup(func() { r.Close() })
	return r
}

// recvNested returns the reader's next event, an upsert, waiting at most waitFor.
func (e *env) recvNested(r *ephemeral.Reader[string, nested]) ephemeral.Event[string, nested] {
	e.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitFor)
	defer cancel()
	ev, err := r.Recv(ctx)
	if err != nil || ev.Kind != ephemeral.EventUpsert {
		e.Fatalf("Recv: %+v, %v; want an upsert", ev, err)
	}
	return ev
}
