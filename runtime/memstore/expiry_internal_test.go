package memstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// checkHeap fails the test unless b's heap is a valid min-heap whose items know their index,
// holding exactly the live entries and the sweep items of idle tenants.
func checkHeap(t *testing.T, b *Backend) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	entries := 0
	for i, e := range b.heap {
		if e.index != i {
			t.Fatalf("heap item %d has index %d", i, e.index)
		}
		if p := (i - 1) / 2; i > 0 && b.heap[p].due > e.due {
			t.Fatalf("heap item %d is due at %d, before its parent's %d", i, e.due, b.heap[p].due)
		}
		if e.due > e.expires {
			t.Fatalf("heap item %d is due at %d, after its expiry %d", i, e.due, e.expires)
		}
		if e.key != "" {
			entries++
			if e.t.entries[e.key] != e {
				t.Fatalf("heap holds %q, which is not live", e.key)
			}
		}
	}
	live := 0
	for _, st := range b.stores {
		for _, tn := range st.tenants {
			live += len(tn.entries)
		}
	}
	if entries != live {
		t.Fatalf("heap holds %d entries, tenants %d", entries, live)
	}
}

// TestSingleTimer writes many keys with random TTLs in many tenants and checks that the
// backend uses one timer and one goroutine, that its heap stays consistent under upserts,
// touches and removes, and that every entry expires.
func TestSingleTimer(t *testing.T) {
	ctx := context.Background()
	clock := NewFakeClock(start)
	b := New(WithClock(clock))
	defer b.Close()
	goroutines := goruntime.NumGoroutine()
	rng := rand.New(rand.NewPCG(1, 2))
	const tenants, keys = 10, 1000
	s := open(b, "id")
	for i := range tenants * keys {
		sT := fmt.Sprint("t", i%tenants)
		key := fmt.Sprint("k", rng.IntN(keys))
		ttl := time.Duration(1+rng.IntN(60_000)) * time.Millisecond
		var err error
		switch rng.IntN(4) {
		case 0, 1:
			_, err = s.Upsert(ctx, sT, backend.UpsertRequest{Key: key, Value: []byte("v"), TTL: ttl})
		case 2:
			_, err = s.Touch(ctx, sT, backend.TouchRequest{Key: key, TTL: ttl, Quiet: rng.IntN(2) == 0})
		case 3:
			_, err = s.Remove(ctx, sT, backend.RemoveRequest{Key: key})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	checkHeap(t, b)
	if n := clock.timerCount(); n != 1 {
		t.Errorf("backend made %d timers, want 1", n)
	}
	if n := schedulers(b); n != 1 {
		t.Errorf("backend runs %d scheduler goroutines, want 1", n)
	}
	if n := goruntime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines after the writes, %d before", n, goroutines)
	}

	clock.Advance(time.Minute)
	s, sT := open(b, "id"), "t0"
	// A snapshot reconciles what the scheduler has not reached yet.
	if snap, err := s.Snapshot(ctx, sT, ""); err != nil || len(snap.Entries) != 0 {
		t.Fatalf("snapshot after all TTLs: %d entries, %v", len(snap.Entries), err)
	}
	checkHeap(t, b)
}

// TestSweep checks that an idle tenant's state is freed after its event retention, and that a
// cursor of the freed state yields an overflow.
func TestSweep(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	clock := NewFakeClock(start)
	b := New(WithClock(clock))
	defer b.Close()
	s, sT := open(b, "id", backend.Limits{EventRetention: time.Minute}), "t"
	if _, err := s.Upsert(ctx, sT, backend.UpsertRequest{Key: "k", Value: []byte("v"), TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(ctx, sT, "")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.Subscribe(ctx, sT, backend.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if ev, err := sub.Next(ctx); err != nil || ev.Kind != backend.EventExpire {
		t.Fatalf("Next = %+v, %v; want the expire event", ev, err)
	}
	sub.Close()
	// Any call reconciles what is due, whether or not the scheduler got to it first.
	other, otherT := open(b, "id", backend.Limits{EventRetention: time.Minute}), "other"
	kept := func() bool {
		t.Helper()
		if _, err := other.Snapshot(ctx, otherT, ""); err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		_, ok := b.stores["id"].tenants["t"]
		return ok
	}
	clock.Advance(time.Minute) // the expire event is exactly as old as the retention
	if !kept() {
		t.Fatal("the tenant's state was freed while it had a retained event")
	}
	clock.Advance(time.Millisecond) // the expire event leaves the retention window
	if kept() {
		t.Fatal("the idle tenant's state was not freed after its retention")
	}

	sub, err = s.Subscribe(ctx, sT, backend.SubscribeRequest{After: &snap.Cursor})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ev, err := sub.Next(ctx)
	if err != nil || ev.Kind != backend.EventOverflow || ev.After != snap.Cursor || ev.FirstAvailable.Epoch == snap.Cursor.Epoch {
		t.Fatalf("Next after the state was freed = %+v, %v; want an overflow into a new epoch", ev, err)
	}
}

// TestSweepTenantInUse checks that the events of a tenant left alone while in use (an entry of
// a long TTL keeps its state) are dropped once the retention has passed, not kept until the
// next write: the tenant's first write, and 30 s later a burst of 100 events, then nothing.
func TestSweepTenantInUse(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	clock := NewFakeClock(start)
	b := New(WithClock(clock))
	defer b.Close()
	s, sT := open(b, "id", backend.Limits{EventRetention: time.Minute}), "t"
	if _, err := s.Upsert(ctx, sT, backend.UpsertRequest{Key: "first", Value: []byte("v"), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	for i := range 100 {
		if _, err := s.Upsert(ctx, sT, backend.UpsertRequest{Key: fmt.Sprint("k", i%10), Value: []byte("v"), TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	other, otherT := open(b, "id", backend.Limits{EventRetention: time.Minute}), "other"
	retained := func() int {
		t.Helper()
		// Any call reconciles what is due, whether or not the scheduler got to it first.
		if _, err := other.Snapshot(ctx, otherT, ""); err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.stores["id"].tenants[sT].log.Len()
	}
	clock.Advance(time.Minute) // the burst is exactly as old as the retention
	if n := retained(); n < 100 {
		t.Fatalf("%d events retained, want the burst's 100 at least", n)
	}
	clock.Advance(time.Millisecond)
	if n := retained(); n != 0 {
		t.Fatalf("%d events retained a retention after the last, want 0", n)
	}
	checkHeap(t, b)
	snap, err := s.Snapshot(ctx, sT, "")
	if err != nil || len(snap.Entries) != 11 || snap.Cursor.Seq != 101 {
		t.Fatalf("Snapshot = %d entries at %v, %v; want 11 at version 101", len(snap.Entries), snap.Cursor, err)
	}
}

// schedulers returns the number of goroutines running b's scheduler.
func schedulers(b *Backend) int {
	buf := make([]byte, 1<<20)
	buf = buf[:goruntime.Stack(buf, true)]
	return strings.Count(string(buf), fmt.Sprintf("memstore.(*Backend).run(%p)", b))
}

// TestSchedulerBatches expires more entries at once than the scheduler handles in one batch,
// with no call to help it, and checks that every expire event arrives in order.
func TestSchedulerBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	clock := NewFakeClock(start)
	b := New(WithClock(clock))
	defer b.Close()
	s, sT := open(b, "id"), "t"
	const n = 3*schedulerBatch + 7
	for i := range n {
		ttl := time.Duration(1+i%3) * time.Millisecond
		if _, err := s.Upsert(ctx, sT, backend.UpsertRequest{Key: fmt.Sprint("k", i), Value: []byte("v"), TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := s.Subscribe(ctx, sT, backend.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	clock.Advance(time.Second)
	var last backend.Event
	for i := range n {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %d expire events: %v", i, err)
		}
		if ev.Kind != backend.EventExpire || ev.Version != uint64(n+i+1) || ev.At < last.At {
			t.Fatalf("event %d: %+v after %+v, want expire events in order", i, ev, last)
		}
		last = *ev
	}
}
