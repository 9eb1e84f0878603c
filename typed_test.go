package ephemeral_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ephemeral-go/ephemeral/runtime"
)

// pairKey is a two-part key, as ephemeralgen generates them.
type pairKey struct{ A, B string }

func parsePairKey(s string) (pairKey, error) {
	p, err := runtime.SplitKey(s, 2)
	if err != nil {
		return pairKey{}, err
	}
	return pairKey{p[0], p[1]}, nil
}

func TestKeySnapshot(t *testing.T) {
	snap := runtime.Snapshot[text]{
		Entries: []runtime.Entry[text]{{Key: "a:b", Value: text{"1"}, Version: 4}, {Key: "a:c", Value: text{"2"}, Version: 5}},
		Cursor:  "e-5",
	}
	got, err := runtime.KeySnapshot(snap, parsePairKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != 2 || got.Cursor != "e-5" ||
		got.Entries[0].Key != (pairKey{"a", "b"}) || got.Entries[0].Value.S != "1" || got.Entries[0].Version != 4 ||
		got.Entries[1].Key != (pairKey{"a", "c"}) {
		t.Errorf("KeySnapshot = %+v", got)
	}

	snap.Entries[1].Key = "foreign"
	if _, err := runtime.KeySnapshot(snap, parsePairKey); !errors.Is(err, runtime.ErrInvalidKey) {
		t.Errorf("KeySnapshot with a foreign key: %v, want ErrInvalidKey", err)
	}
	// A parser's own error is wrapped, so that callers can match ErrInvalidKey.
	_, err = runtime.ParseEntry(snap.Entries[0], func(string) (int, error) { return 0, fmt.Errorf("nope") })
	if !errors.Is(err, runtime.ErrInvalidKey) {
		t.Errorf("ParseEntry with a failing parser: %v, want ErrInvalidKey", err)
	}
}

func TestKeyedReader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, rec := newStore(t, runtime.Config{ID: "id", TTL: time.Second})
	r0, err := s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := runtime.NewKeyedReader(r0, parsePairKey)
	defer r.Close()
	c := func(seq uint64) runtime.Cursor { return runtime.Cursor{Epoch: "e", Seq: seq} }
	rec.events <- runtime.RawEvent{Kind: runtime.EventUpsert, Cursor: c(6), Key: "r:u", Version: 6,
		Entry: runtime.RawEntry{Key: "r:u", Value: []byte("v"), Version: 6}}
	rec.events <- runtime.RawEvent{Kind: runtime.EventTouch, Cursor: c(7), Key: "no-separator", Version: 7}
	rec.events <- runtime.RawEvent{Kind: runtime.EventUpsert, Cursor: c(8), Key: "r:u", Version: 8, Entry: runtime.RawEntry{Key: "r:u", Value: []byte("bad")}}
	rec.events <- runtime.RawEvent{Kind: runtime.EventOverflow, Cursor: c(9), After: c(8), FirstAvailable: c(9)}
	rec.events <- runtime.RawEvent{Kind: runtime.EventExpire, Cursor: c(10), Key: "r:x%3Ay", Version: 10}

	var got []string
	for ev, err := range r.Events(ctx) {
		switch {
		case errors.Is(err, runtime.ErrInvalidKey):
			got = append(got, "key-error@"+ev.Cursor)
		case errors.Is(err, runtime.ErrDecode):
			got = append(got, fmt.Sprintf("decode-error:%v:%v@%s", ev.Key, ev.Entry == nil, ev.Cursor))
		case err != nil:
			t.Fatal(err)
		case ev.Kind == runtime.EventUpsert:
			got = append(got, fmt.Sprintf("upsert:%v=%v:%v@%s", ev.Key, ev.Entry.Key, ev.Entry.Value.S, ev.Cursor))
		case ev.Kind == runtime.EventOverflow:
			got = append(got, fmt.Sprintf("overflow:%v:%s>%s", ev.Key, ev.After, ev.FirstAvailable))
		default:
			got = append(got, fmt.Sprintf("%v:%v@%s", ev.Kind, ev.Key, ev.Cursor))
		}
		if len(got) == 5 {
			break
		}
	}
	want := []string{
		"upsert:{r u}={r u}:v@e-6",
		"key-error@e-7",
		"decode-error:{r u}:true@e-8",
		"overflow:{ }:e-8>e-9",
		"expire:{r x:y}@e-10",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	if r.Cursor() != "e-10" {
		t.Errorf("Cursor() = %q, want e-10", r.Cursor())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Recv(ctx); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Recv after Close = %v, want ErrClosed", err)
	}
}

func TestOnKeyedChange(t *testing.T) {
	for _, errorFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("errorFirst=%v", errorFirst), func(t *testing.T) {
			s, _ := newMemStore(t)
			mustUpsert(t, s, seat{"r1", "bob"}.String(), "2")
			mustUpsert(t, s, "zz-foreign", "3")
			changes := make(chan runtime.KeyedChange[seat, text], 10)
			errs := make(chan error, 10)
			onChange := runtime.OnKeyedChange(func(c runtime.KeyedChange[seat, text]) { changes <- c }, parseSeat)
			onError := runtime.OnMirrorError(func(err error) { errs <- err })
			opts := []runtime.MirrorOption{onChange, onError}
			if errorFirst {
				opts = []runtime.MirrorOption{onError, onChange}
			}
			m := startMirror(t, s, opts...)

			mustUpsert(t, s, seat{"r1", "ann"}.String(), "1")
			mustRemove(t, s, seat{"r1", "bob"}.String(), runtime.WithReason("left"))
			var got []string
			for range 3 {
				c := receive(t, changes)
				if c.Entry.Key != c.Key {
					t.Errorf("change of %v has an entry of %v", c.Key, c.Entry.Key)
				}
				d := fmt.Sprintf("%s %s/%s=%s v%d", c.Kind, c.Key.Room, c.Key.Name, c.Entry.Value.S, c.Version)
				if c.Kind == runtime.ChangeRemoved {
					d += fmt.Sprintf(" %s(%s)", c.Cause, c.Reason)
				}
				got = append(got, d)
			}
			want := []string{
				"added r1/bob=2 v1",
				"added r1/ann=1 v3",
				"removed r1/bob=2 v4 delete(left)",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			if err := receive(t, errs); !errors.Is(err, runtime.ErrInvalidKey) || !strings.Contains(err.Error(), "zz-foreign") {
				t.Errorf("error = %v, want ErrInvalidKey of zz-foreign", err)
			}
			if _, ok := m.Get("zz-foreign"); !ok {
				t.Error("the mirror dropped the foreign key")
			}
		})
	}
}

// receive returns the next value of ch, waiting at most 5 s.
func receive[V any](t *testing.T, ch <-chan V) V {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out")
		var zero V
		return zero
	}
}

func TestOnKeyedChangeWrongType(t *testing.T) {
	s, _ := newMemStore(t)
	_, err := s.Mirror(runtime.OnKeyedChange(func(runtime.KeyedChange[seat, int]) {}, parseSeat))
	if !errors.Is(err, runtime.ErrInvalidConfig) {
		t.Errorf("Mirror with a callback of int values: %v, want ErrInvalidConfig", err)
	}
}

func TestPlainKeyedMirror(t *testing.T) {
	s, _ := newMemStore(t)
	mustUpsert(t, s, "a:b", "1")
	m := startMirror(t, s)
	km := runtime.NewKeyedMirror(m, runtime.FormatPlainKey, runtime.ParsePlainKey)
	if e, ok := km.Get("a:b"); !ok || e.Key != "a:b" || e.Value.S != "1" {
		t.Errorf("Get(a:b) = %+v, %v", e, ok)
	}
}
