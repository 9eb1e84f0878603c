package ephemeral_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// seat is a composite key, written by hand as ephemeralgen generates one for key=Room,Name.
type seat struct{ Room, Name string }

func (k seat) String() string { return ephemeral.JoinKey(k.Room, k.Name) }

func parseSeat(s string) (seat, error) {
	p, err := ephemeral.SplitKey(s, 2)
	if err != nil {
		return seat{}, err
	}
	return seat{p[0], p[1]}, nil
}

var seatKeys = ephemeral.KeyCodec[seat]{Format: seat.String, Parse: parseSeat}

// fields returns the fields of k, such as "{r1 ann}".
func fields(k seat) string { return "{" + k.Room + " " + k.Name + "}" }

// countingKeys is seatKeys that counts the calls of Parse.
type countingKeys struct{ parses atomic.Int64 }

func (c *countingKeys) codec() ephemeral.KeyCodec[seat] {
	return ephemeral.KeyCodec[seat]{Format: seat.String, Parse: func(s string) (seat, error) {
		c.parses.Add(1)
		return parseSeat(s)
	}}
}

// guest is a value with its key fields, for stores of seats with a KeyOf function.
type guest struct{ Room, Name, Status string }

func (g guest) key() seat { return seat{g.Room, g.Name} }

// guestCodec stores a guest as the composite key of its three fields.
type guestCodec struct{}

func (guestCodec) Encode(dst []byte, v *guest) ([]byte, error) {
	return append(dst, ephemeral.JoinKey(v.Room, v.Name, v.Status)...), nil
}

func (guestCodec) Decode(src []byte, v *guest) error {
	p, err := ephemeral.SplitKey(string(src), 3)
	if err != nil {
		return err
	}
	*v = guest{p[0], p[1], p[2]}
	return nil
}

func guestConfig() ephemeral.Config[seat, guest] {
	return ephemeral.Config[seat, guest]{ID: "guests", TTL: time.Minute, Codec: guestCodec{}, Key: seatKeys, KeyOf: guest.key}
}

// newSeatStore returns a store of text values under seat keys, on a recorder.
func newSeatStore(t *testing.T, keys ephemeral.KeyCodec[seat]) (*ephemeral.Store[seat, text], *recorder) {
	t.Helper()
	rec := newRecorder()
	s, err := ephemeral.New(rec, ephemeral.Config[seat, text]{ID: "seats", TTL: time.Second, Codec: textCodec{}, Key: keys})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func TestTypedKeysReachBackend(t *testing.T) {
	ctx := context.Background()
	s, rec := newSeatStore(t, seatKeys)
	k := seat{"r:1", "50%"}
	if got := s.KeyString(k); got != "r%3A1:50%25" {
		t.Errorf("KeyString = %q", got)
	}
	e, err := s.Upsert(ctx, k, text{"v"})
	if err != nil || e.Key != k {
		t.Fatalf("Upsert = %+v, %v", e, err)
	}
	if _, err := s.Touch(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, k); err != nil {
		t.Fatal(err)
	}
	if e, ok, err := s.Get(ctx, k); err != nil || !ok || e.Key != k || e.Value.S != "r%3A1:50%25" {
		t.Errorf("Get = %+v, %v, %v", e, ok, err)
	}
	if rec.upserts[0].Key != "r%3A1:50%25" || rec.touches[0].Key != "r%3A1:50%25" || rec.removes[0].Key != "r%3A1:50%25" {
		t.Errorf("requests %+v %+v %+v", rec.upserts, rec.touches, rec.removes)
	}
	// A key whose string form is empty is invalid, whatever its type.
	empty, _ := newSeatStore(t, ephemeral.KeyCodec[seat]{Format: func(seat) string { return "" }, Parse: parseSeat})
	if _, err := empty.Upsert(ctx, seat{}, text{"v"}); !errors.Is(err, ephemeral.ErrInvalidKey) {
		t.Errorf("Upsert of an empty key = %v, want ErrInvalidKey", err)
	}
}

func TestTypedSnapshot(t *testing.T) {
	ctx := context.Background()
	s, rec := newSeatStore(t, seatKeys)
	snap, err := s.Snapshot(ctx, ephemeral.WithPrefix(ephemeral.JoinKeyPrefix("a")))
	if err != nil {
		t.Fatal(err)
	}
	want := ephemeral.Snapshot[seat, text]{
		Entries: []ephemeral.Entry[seat, text]{
			{Key: seat{"a", "a"}, Value: text{"1"}, Version: 1, CreatedAt: time.UnixMilli(0).UTC(), UpdatedAt: time.UnixMilli(0).UTC(), ExpiresAt: time.UnixMilli(0).UTC()},
			{Key: seat{"a", "b"}, Value: text{"2"}, Version: 2, CreatedAt: time.UnixMilli(0).UTC(), UpdatedAt: time.UnixMilli(0).UTC(), ExpiresAt: time.UnixMilli(0).UTC()},
		},
		Cursor: "e-9",
	}
	if diff := cmp.Diff(want, snap); diff != "" {
		t.Errorf("Snapshot (-want +got):\n%s", diff)
	}

	// An entry with a key written by another program, or a value the codec cannot decode, is
	// left out: the snapshot holds the others and its cursor, and the error names the keys.
	rec.snapshotKeys = []string{"a:b", "foreign", "a:bad", "a:c"}
	snap, err = s.Snapshot(ctx)
	var se *ephemeral.SnapshotError
	if !errors.As(err, &se) || !errors.Is(err, ephemeral.ErrInvalidKey) || !errors.Is(err, ephemeral.ErrDecode) ||
		!slices.Equal(se.Keys, []string{"foreign", "a:bad"}) || !strings.Contains(err.Error(), `"foreign", "a:bad"`) {
		t.Errorf("Snapshot with a foreign key and an undecodable value: error %v, want a SnapshotError naming both", err)
	}
	if len(snap.Entries) != 2 || snap.Entries[0].Key != (seat{"a", "b"}) || snap.Entries[1].Key != (seat{"a", "c"}) || snap.Cursor != "e-9" {
		t.Errorf("Snapshot with two bad entries = %+v, want the two good ones and the cursor", snap)
	}

	// The message names at most five keys.
	rec.snapshotKeys = []string{"f1", "f2", "f3", "f4", "f5", "f6", "f7", "a:b"}
	snap, err = s.Snapshot(ctx)
	if !errors.As(err, &se) || len(se.Keys) != 7 || !strings.Contains(err.Error(), `"f5" and 2 more`) || len(snap.Entries) != 1 {
		t.Errorf("Snapshot with seven foreign keys = %+v, %v", snap, err)
	}

	// A parser's own error is wrapped, so that callers can match ErrInvalidKey.
	nope := errors.New("nope")
	s2, rec2 := newSeatStore(t, ephemeral.KeyCodec[seat]{Format: seat.String, Parse: func(string) (seat, error) { return seat{}, nope }})
	rec2.snapshotKeys = []string{"a:b"}
	if _, err := s2.Snapshot(ctx); !errors.Is(err, ephemeral.ErrInvalidKey) || !errors.Is(err, nope) {
		t.Errorf("Snapshot with a failing parser: %v, want ErrInvalidKey wrapping the parser's error", err)
	}
}

// TestEventSize checks that an Event's fields besides Key and Value take a multiple of 16 bytes
// (see the padding at the end of Event), so that an event whose key and value are of sizes
// that are multiples of 16 (strings, structs of strings) is one too.
func TestEventSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the padding is for 64-bit platforms")
	}
	sizes := map[string]uintptr{
		"Event[string, struct{}]": unsafe.Sizeof(ephemeral.Event[string, struct{}]{}),
		"Event[seat, [32]byte]":   unsafe.Sizeof(ephemeral.Event[seat, [32]byte]{}),
	}
	for name, size := range sizes {
		if size%16 != 0 {
			t.Errorf("%s: %d bytes, not a multiple of 16", name, size)
		}
	}
}

func TestTypedReader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The parser returns a partial key with its error: the event must carry the zero key.
	keys := ephemeral.KeyCodec[seat]{Format: seat.String, Parse: func(s string) (seat, error) {
		k, err := parseSeat(s)
		if err != nil {
			return seat{Room: "partial"}, err
		}
		return k, nil
	}}
	s, rec := newSeatStore(t, keys)
	r, err := s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec.events <- backend.Event{Kind: backend.EventUpsert, Epoch: "e", Key: "r:u", Version: 6, Value: []byte("v")}
	rec.events <- backend.Event{Kind: backend.EventTouch, Epoch: "e", Key: "no-separator", Version: 7}
	rec.events <- backend.Event{Kind: backend.EventUpsert, Epoch: "e", Key: "r:u", Version: 8, Value: []byte("bad")}
	rec.events <- backend.Event{Kind: backend.EventOverflow, Epoch: "e", After: backend.Cursor{Epoch: "e", Seq: 8}, FirstAvailable: backend.Cursor{Epoch: "e", Seq: 9}}
	rec.events <- backend.Event{Kind: backend.EventExpire, Epoch: "e", Key: "r:x%3Ay", Version: 10}
	rec.events <- backend.Event{Kind: backend.EventUpsert, Epoch: "e", Key: "r:u:v", Version: 11, Value: []byte("v")}

	var got []string
	for ev, err := range r.Events(ctx) {
		switch {
		case errors.Is(err, ephemeral.ErrInvalidKey):
			got = append(got, fmt.Sprintf("key-error:%s:%v@%s", fields(ev.Key), ev.Value == text{}, ev.Cursor))
		case errors.Is(err, ephemeral.ErrDecode):
			got = append(got, fmt.Sprintf("decode-error:%s:%v@%s", fields(ev.Key), ev.Value == text{}, ev.Cursor))
		case err != nil:
			t.Fatal(err)
		case ev.Kind == ephemeral.EventUpsert:
			got = append(got, fmt.Sprintf("upsert:%s:%v@%s", fields(ev.Key), ev.Value.S, ev.Cursor))
		case ev.Kind == ephemeral.EventOverflow:
			got = append(got, fmt.Sprintf("overflow:%s:%s>%s", fields(ev.Key), ev.After, ev.Cursor))
		default:
			got = append(got, fmt.Sprintf("%v:%s@%s", ev.Kind, fields(ev.Key), ev.Cursor))
		}
		if len(got) == 6 {
			break
		}
	}
	want := []string{
		"upsert:{r u}:v@e-6",
		"key-error:{ }:true@e-7",
		"decode-error:{r u}:true@e-8",
		"overflow:{ }:e-8>e-9",
		"expire:{r x:y}@e-10",
		"key-error:{ }:true@e-11",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if r.Cursor() != "e-11" {
		t.Errorf("Cursor() = %q, want e-11", r.Cursor())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Recv(ctx); !errors.Is(err, ephemeral.ErrClosed) {
		t.Errorf("Recv after Close = %v, want ErrClosed", err)
	}
}

// TestTypedMirror runs a mirror of a store of seats on the memory backend, with a foreign key
// written by a store of plain string keys of the same ID.
func TestTypedMirror(t *testing.T) {
	ctx := context.Background()
	b, clock := newMemBackend(t)
	plain := newTestStore(t, b) // the other program's store: plain string keys, the same ID
	var counter countingKeys
	s, err := ephemeral.New(b, ephemeral.Config[seat, text]{ID: plain.ID(), TTL: time.Minute, Codec: textCodec{}, Key: counter.codec()})
	if err != nil {
		t.Fatal(err)
	}
	mustUpsertTyped(t, s, seat{"r1", "bob"}, "2")
	mustUpsertTyped(t, s, seat{"r1", "ann"}, "1")
	mustUpsert(t, plain, "zz-foreign", "3", ephemeral.WithTTL(time.Hour))

	changes := make(chan ephemeral.Change[seat, text], 100)
	errs := make(chan error, 100)
	m, err := s.Mirror(func(c ephemeral.Change[seat, text]) { changes <- c },
		ephemeral.OnMirrorError(func(err error) { errs <- err }),
		ephemeral.WithMirrorClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	// The snapshot: two seats and a foreign key, reported and skipped.
	if err := receive(t, errs); !errors.Is(err, ephemeral.ErrInvalidKey) || !strings.Contains(err.Error(), "zz-foreign") {
		t.Errorf("error = %v, want ErrInvalidKey of zz-foreign", err)
	}
	expectSeatChanges(t, changes, "added r1/ann=1 v2", "added r1/bob=2 v1")
	if n := counter.parses.Load(); n != 3 {
		t.Errorf("%d parses for a snapshot of 3 entries", n)
	}

	// Reading the mirror parses no key.
	for range 3 {
		var got []string
		for k, e := range m.All() {
			if e.Key != k {
				t.Errorf("All yields key %v with an entry of %v", k, e.Key)
			}
			got = append(got, fmt.Sprintf("%s/%s=%s", k.Room, k.Name, e.Value.S))
		}
		if diff := cmp.Diff([]string{"r1/ann=1", "r1/bob=2"}, got); diff != "" {
			t.Errorf("All (-want +got):\n%s", diff)
		}
		if n := m.Len(); n != 2 {
			t.Errorf("Len = %d, want 2: the foreign key is not held", n)
		}
		if e, ok := m.Get(seat{"r1", "bob"}); !ok || e.Key != (seat{"r1", "bob"}) || e.Value.S != "2" {
			t.Errorf("Get(r1, bob) = %+v, %v", e, ok)
		}
		if _, ok := m.Get(seat{"r2", "bob"}); ok {
			t.Error("Get(r2, bob) found a key never written")
		}
	}
	if n := counter.parses.Load(); n != 3 {
		t.Errorf("%d parses after reading the mirror, want still 3", n)
	}

	// Events: one parse per upsert; touches and removals reuse the key the mirror holds. An
	// upsert of a foreign key is reported and skipped.
	mustUpsert(t, plain, "zz-foreign", "3b", ephemeral.WithTTL(time.Hour))
	mustUpsertTyped(t, s, seat{"r1", "cy:d"}, "4")
	if _, err := s.Touch(ctx, seat{"r1", "ann"}, ephemeral.WithTTL(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, seat{"r1", "bob"}, ephemeral.WithReason("left")); err != nil {
		t.Fatal(err)
	}
	expectSeatChanges(t, changes, "added r1/cy:d=4 v5", "touched r1/ann=1 v6", "removed r1/bob=2 v7 delete(left)")
	if err := receive(t, errs); !errors.Is(err, ephemeral.ErrInvalidKey) || !strings.Contains(err.Error(), "zz-foreign") {
		t.Errorf("error = %v, want ErrInvalidKey of zz-foreign", err)
	}
	if n := counter.parses.Load(); n != 5 {
		t.Errorf("%d parses, want 5: 3 of the snapshot, 2 of upserts", n)
	}
	clock.Advance(time.Minute) // the seats expire; expire events parse nothing either
	expectSeatChanges(t, changes, "removed r1/cy:d=4 v8 expire()")
	clock.Advance(time.Minute)
	expectSeatChanges(t, changes, "removed r1/ann=1 v9 expire()")
	if n := counter.parses.Load(); n != 5 {
		t.Errorf("%d parses after expiries, want 5", n)
	}
	if n := m.Len(); n != 0 {
		t.Errorf("Len = %d, want 0", n)
	}
	select {
	case err := <-errs:
		t.Errorf("unexpected error %v", err)
	default:
	}
}

// TestTypedMirrorRelist checks that a relist parses each entry of the new snapshot once and
// reports typed changes.
func TestTypedMirrorRelist(t *testing.T) {
	b := newFakeBackend()
	var counter countingKeys
	s, err := ephemeral.New(b, ephemeral.Config[seat, text]{ID: "seats", TTL: time.Minute, Codec: textCodec{}, Key: counter.codec()})
	if err != nil {
		t.Fatal(err)
	}
	mustUpsertTyped(t, s, seat{"r", "a"}, "1")
	mustUpsertTyped(t, s, seat{"r", "b"}, "2")
	changes := make(chan ephemeral.Change[seat, text], 100)
	m, err := s.Mirror(func(c ephemeral.Change[seat, text]) { changes <- c })
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	expectSeatChanges(t, changes, "added r/a=1 v1", "added r/b=2 v2")

	b.pause()
	b.reset()
	mustUpsertTyped(t, s, seat{"r", "c"}, "3") // v1 of the new epoch
	mustUpsertTyped(t, s, seat{"r", "a"}, "1") // v2
	b.resume()
	expectSeatChanges(t, changes, "updated r/a=1 v2", "removed r/b=2 v2 relist()", "added r/c=3 v1")
	if n := counter.parses.Load(); n != 4 {
		t.Errorf("%d parses, want 4: 2 entries of each snapshot", n)
	}
}

// mustUpsertTyped upserts value at key.
func mustUpsertTyped(t *testing.T, s *ephemeral.Store[seat, text], key seat, value string) ephemeral.Entry[seat, text] {
	t.Helper()
	e, err := s.Upsert(context.Background(), key, text{value})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// expectSeatChanges receives len(want) changes from ch and compares them with want, in the
// form "removed r1/bob=2 v4 delete(left)". It checks that every change's entry has its key.
func expectSeatChanges(t *testing.T, ch <-chan ephemeral.Change[seat, text], want ...string) {
	t.Helper()
	var got []string
	for range want {
		c := receive(t, ch)
		if c.Entry.Key != c.Key {
			t.Errorf("change of %v has an entry of %v", c.Key, c.Entry.Key)
		}
		d := fmt.Sprintf("%s %s/%s=%s v%d", c.Kind, c.Key.Room, c.Key.Name, c.Entry.Value.S, c.Version)
		if c.Kind == ephemeral.ChangeRemoved {
			d += fmt.Sprintf(" %s(%s)", c.Cause, c.Reason)
		}
		got = append(got, d)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

// receive returns the next value of ch, waiting at most 30 s.
func receive[V any](t *testing.T, ch <-chan V) V {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("timed out")
		var zero V
		return zero
	}
}

// pair is a flat value whose codec, like encoding/json, leaves what the input does not have as
// it was: Decode sets A from a digit and leaves B.
type pair struct{ A, B int }

type pairCodec struct{}

func (pairCodec) Encode(dst []byte, v *pair) ([]byte, error) { return append(dst, byte('0'+v.A)), nil }

func (pairCodec) Decode(src []byte, v *pair) error {
	if len(src) != 1 || src[0] < '0' || src[0] > '9' {
		return errors.New("pair: not a digit")
	}
	v.A = int(src[0] - '0')
	return nil
}

// TestAppendSnapshotReusedDecode checks that an AppendSnapshot into a reused slice, on a backend
// without memos (each value decoded), decodes each value into a zero value: nothing of the
// entry that was in the slice before stays.
func TestAppendSnapshotReusedDecode(t *testing.T) {
	ctx := context.Background()
	s, err := ephemeral.New(newRecorder(), ephemeral.Config[string, pair]{ID: "pairs", TTL: time.Second, Codec: pairCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	buf := []ephemeral.Entry[string, pair]{{Key: "old", Value: pair{7, 99}}, {Key: "old2", Value: pair{8, 99}}}
	snap, err := s.AppendSnapshot(ctx, buf[:0])
	if err != nil {
		t.Fatal(err)
	}
	want := []pair{{1, 0}, {2, 0}}
	if len(snap.Entries) != 2 || snap.Entries[0].Value != want[0] || snap.Entries[1].Value != want[1] || &snap.Entries[0] != &buf[0] {
		t.Errorf("AppendSnapshot into a reused slice = %+v, want the values %v in the same array", snap.Entries, want)
	}
}

// TestReadAfterTouch checks that a snapshot and a Get on memstore, which keeps the decoded form
// of each version of an entry in a memo, show the times and version of a touch made after the
// memo was.
func TestReadAfterTouch(t *testing.T) {
	ctx := context.Background()
	b, clock := newMemBackend(t)
	s := newTestStore(t, b)
	up := mustUpsert(t, s, "k", "v")
	if _, err := s.Snapshot(ctx); err != nil { // the memo of version 1
		t.Fatal(err)
	}
	for _, quiet := range []bool{true, false} {
		clock.Advance(time.Second)
		opts := []ephemeral.TouchOption{ephemeral.WithTTL(time.Hour)}
		updated := up.UpdatedAt
		if quiet {
			opts = append(opts, ephemeral.Quiet())
		} else {
			updated = clock.Now().UTC()
		}
		res, err := s.Touch(ctx, "k", opts...)
		if err != nil || !res.OK {
			t.Fatalf("Touch(quiet %t) = %+v, %v", quiet, res, err)
		}
		snap, err := s.Snapshot(ctx)
		if err != nil || len(snap.Entries) != 1 {
			t.Fatalf("Snapshot = %+v, %v", snap, err)
		}
		e, ok, err := s.Get(ctx, "k")
		if err != nil || !ok {
			t.Fatalf("Get = %v, %v", ok, err)
		}
		for what, got := range map[string]ephemeral.Entry[string, text]{"Snapshot": snap.Entries[0], "Get": e} {
			if got.Version != res.Version || !got.ExpiresAt.Equal(res.ExpiresAt) || !got.UpdatedAt.Equal(updated) ||
				!got.CreatedAt.Equal(up.CreatedAt) || got.Value != up.Value {
				t.Errorf("%s after a touch (quiet %t) = %+v, want version %d, expiry %v, updated %v, created %v",
					what, quiet, got, res.Version, res.ExpiresAt, updated, up.CreatedAt)
			}
		}
	}
}
