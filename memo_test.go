package ephemeral_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

// countingDecoder is textCodec, counting its decodes. It has no Clone, but text is flat (it
// holds a string and nothing a caller could modify in place), so a store copies its values by
// assignment all the same.
type countingDecoder struct {
	textCodec
	decodes *atomic.Int64
}

func (c countingDecoder) Decode(src []byte, v *text) error {
	c.decodes.Add(1)
	return c.textCodec.Decode(src, v)
}

// countingCodec is countingDecoder with a Clone.
type countingCodec struct{ countingDecoder }

func (countingCodec) Clone(dst, src *text) { *dst = *src }

// TestDecodeOncePerVersion checks that on memstore a store whose codec has Clone, or whose
// values are flat, decodes each version of a value once, however many Gets, Snapshots and
// readers read it, and that a new version is decoded again.
func TestDecodeOncePerVersion(t *testing.T) {
	t.Run("clone", func(t *testing.T) {
		var decodes atomic.Int64
		testDecodeOnce(t, countingCodec{countingDecoder{decodes: &decodes}}, &decodes)
	})
	t.Run("flat", func(t *testing.T) {
		var decodes atomic.Int64
		testDecodeOnce(t, countingDecoder{decodes: &decodes}, &decodes)
	})
}

func testDecodeOnce(t *testing.T, codec ephemeral.Codec[text], decodes *atomic.Int64) {
	ctx := context.Background()
	b := memstore.New()
	defer b.Close()
	s, err := ephemeral.New(b, ephemeral.Config[string, text]{ID: "memo", TTL: time.Hour, Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	read := func(want string) {
		t.Helper()
		for range 3 {
			if e, ok, err := s.Get(ctx, "k"); err != nil || !ok || e.Value.S != want {
				t.Fatalf("Get = %+v, %v, %v; want %q", e, ok, err, want)
			}
			snap, err := s.Snapshot(ctx)
			if err != nil || len(snap.Entries) != 2 || snap.Entries[0].Value.S != want {
				t.Fatalf("Snapshot = %+v, %v; want k = %q first", snap, err, want)
			}
		}
	}
	for _, kv := range [][2]string{{"k", "v1"}, {"other", "x"}} {
		if _, err := s.Upsert(ctx, kv[0], text{kv[1]}); err != nil {
			t.Fatal(err)
		}
	}
	read("v1")
	if n := decodes.Load(); n != 2 {
		t.Fatalf("%d decodes for 3 Gets and 3 Snapshots of 2 values, want 2", n)
	}
	if _, err := s.Upsert(ctx, "k", text{"v2"}); err != nil {
		t.Fatal(err)
	}
	read("v2")
	if n := decodes.Load(); n != 3 {
		t.Fatalf("%d decodes after a new version of one value, want 3", n)
	}
	if _, err := s.Touch(ctx, "k"); err != nil { // a new version, the same value
		t.Fatal(err)
	}
	read("v2")
	if n := decodes.Load(); n != 3 {
		t.Fatalf("%d decodes after a touch, want 3 (the value did not change)", n)
	}

	// Three readers of one upsert: one decode.
	var readers []*ephemeral.Reader[string, text]
	for range 3 {
		r, err := s.Reader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		readers = append(readers, r)
	}
	if _, err := s.Upsert(ctx, "k", text{"v3"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range readers {
		if ev, err := r.Recv(ctx); err != nil || ev.Value.S != "v3" {
			t.Fatalf("Recv = %+v, %v; want the upsert of v3", ev, err)
		}
	}
	if n := decodes.Load(); n != 4 {
		t.Fatalf("%d decodes after 3 readers received a new version, want 4", n)
	}
}

// TestMemstoreAllocs checks the allocation budget of the typed calls on memstore, with a codec
// that clones a flat value: an upsert of a live key allocates only the encoded value the backend
// keeps, a get of a value read before allocates nothing, and so does a reader's Recv of an
// event that another reader decoded.
func TestMemstoreAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts under the race detector")
	}
	ctx := context.Background()
	b := memstore.New()
	defer b.Close()
	var decodes atomic.Int64
	s, err := ephemeral.New(b, ephemeral.Config[string, text]{ID: "allocs", TTL: time.Hour, Codec: countingCodec{countingDecoder{decodes: &decodes}}})
	if err != nil {
		t.Fatal(err)
	}
	v := text{"value"}
	if _, err := s.Upsert(ctx, "k", v); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := s.Upsert(ctx, "k", v); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Errorf("Upsert: %v allocations, want at most 1", n)
	}
	if _, _, err := s.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, ok, err := s.Get(ctx, "k"); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}); n > 0 {
		t.Errorf("Get: %v allocations, want none", n)
	}

	// Receiving an event that another reader decoded allocates nothing: the event is shared,
	// and its entry is copied into the returned Event by value.
	first, err := s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	const events = 200
	for i := range events {
		if _, err := s.Upsert(ctx, "k", text{"v" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for range events {
		if _, err := first.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	if n := testing.AllocsPerRun(events-1, func() {
		ev, err := second.Recv(ctx)
		if err != nil || ev.Value.S != "v"+strconv.Itoa(i) {
			t.Fatalf("event %d: %+v, %v", i, ev, err)
		}
		i++
	}); n > 0 {
		t.Errorf("Recv: %v allocations, want none", n)
	}
}
