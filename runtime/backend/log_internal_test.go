package backend

import (
	"reflect"
	"testing"
)

// TestAwaitDropsReleased checks that waiters released while their log had no wake-up do not
// pile up in it: an idle tenant's readers come and go.
func TestAwaitDropsReleased(t *testing.T) {
	l := NewLog("e", 0, 8)
	live := NewWaiter()
	l.Await(live)
	for range 10_000 {
		w := NewWaiter()
		l.Await(w)
		w.Release()
	}
	l.wmu.Lock()
	n := len(l.waiters)
	l.wmu.Unlock()
	if n > 2*minPrune {
		t.Fatalf("%d waiters held after 10,000 released ones, want at most %d", n, 2*minPrune)
	}
	l.Wake()
	select {
	case <-live.c:
	default:
		t.Fatal("the waiter that was not released was dropped: not woken")
	}
}

// TestLogReleases checks what the ring keeps of the events it no longer holds: nothing of those
// dropped by time or by a gap, and, of those dropped for the limit, only what is in the slots
// not reused yet.
func TestLogReleases(t *testing.T) {
	const limit = 5 // a ring of 8 slots
	l := NewLog("e", 0, limit)
	add := func(from, to uint64) {
		for v := from; v <= to; v++ {
			l.Append(&Event{Kind: EventUpsert, Version: v, At: int64(v), Key: "k", Value: []byte("value")})
		}
	}
	kept := func() (recs, evs int) {
		l.mu.Lock()
		defer l.mu.Unlock()
		r := l.ring.Load()
		for i := range r.recs {
			if r.recs[i].key != "" || r.recs[i].value != nil {
				recs++
			}
			if r.evs[i].Load() != nil {
				evs++
			}
		}
		return recs, evs
	}
	add(1, 12)
	for v := l.First(); v <= l.Head(); v++ {
		if ev, _ := l.At(v); ev == nil || string(ev.Value) != "value" {
			t.Fatalf("At(%d) = %v", v, ev)
		}
	}
	if recs, evs := kept(); recs != 8 || evs != limit {
		t.Fatalf("after wrapping: %d records and %d events kept, want 8 (the ring's slots) and %d", recs, evs, limit)
	}
	l.DropBefore(11) // drops 8, 9 and 10
	if recs, evs := kept(); recs != 5 || evs != 2 {
		t.Fatalf("after a drop by time: %d records and %d events kept, want 5 (3 not reused yet) and 2", recs, evs)
	}
	add(20, 20) // a gap drops 11 and 12
	if recs, evs := kept(); recs != 4 || evs != 0 {
		t.Fatalf("after a gap: %d records and %d events kept, want 4 (3 not reused yet, and 20) and 0", recs, evs)
	}
}

// TestAppendSetsEveryField guards Append, which sets the fields of a ring slot one by one and
// so leaves in place any it does not name: logRec has the fields Append sets, and a reused slot
// holds the new event alone.
func TestAppendSetsEveryField(t *testing.T) {
	if n := reflect.TypeOf(logRec{}).NumField(); n != 7 {
		t.Fatalf("logRec has %d fields, Append sets 7: set the new ones there, and count them here", n)
	}
	l := NewLog("e", 0, 1) // a ring of one slot
	l.Append(&Event{Kind: EventUpsert, Version: 1, At: 10, CreatedAt: 5, ExpiresAt: 20, Key: "a", Value: []byte("v")})
	want := logRec{kind: EventUpsert, at: 10, created: 5, expires: 20, key: "a", value: []byte("v")}
	if got := l.ring.Load().recs[0]; !reflect.DeepEqual(got, want) {
		t.Fatalf("the slot holds %+v, want %+v", got, want)
	}
	l.Append(&Event{Kind: EventDelete, Version: 2, At: 11, Key: "b", Reason: "gone"})
	want = logRec{kind: EventDelete, at: 11, key: "b", reason: "gone"}
	if got := l.ring.Load().recs[0]; !reflect.DeepEqual(got, want) {
		t.Fatalf("the reused slot holds %+v, want %+v", got, want)
	}
}

// TestLogWithoutAppend checks a log that has had no append: it holds no ring of its own, reads
// before its head are gone and after it to come, a drop changes nothing, and its first append,
// in order or after a gap, makes its ring (an append to the shared empty one would panic).
func TestLogWithoutAppend(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { NewLog("e", 5, 4) }); n != 2 {
		t.Errorf("NewLog makes %v allocations, want 2: the log and its lock, no ring", n)
	}
	for _, first := range []uint64{6, 9} {
		l := NewLog("e", 5, 4)
		for v := uint64(0); v <= 5; v++ {
			if ev, wait := l.At(v); ev != nil || wait {
				t.Fatalf("At(%d) of a log at 5: %v, %v; want gone", v, ev, wait)
			}
		}
		if ev, wait := l.At(6); ev != nil || !wait {
			t.Fatalf("At(6) of a log at 5: %v, %v; want to come", ev, wait)
		}
		l.DropBefore(1 << 62)
		if n := l.Len(); n != 0 {
			t.Fatalf("Len after a drop: %d, want 0", n)
		}
		l.Append(&Event{Kind: EventUpsert, Key: "k", Version: first, At: 1})
		if ev, _ := l.At(first); ev == nil || ev.Key != "k" || ev.Version != first {
			t.Fatalf("At(%d) after its append: %+v", first, ev)
		}
	}
}
