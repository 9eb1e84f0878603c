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

// sweepFixture is a store with an event retention of a minute, on a backend whose clock moves
// only when the test advances it.
type sweepFixture struct {
	ctx   context.Context
	clock *FakeClock
	b     *Backend
	s     backend.Store
}

func newSweepFixture(t *testing.T) sweepFixture {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	clock := NewFakeClock(start)
	b := New(WithClock(clock))
	t.Cleanup(func() { b.Close() })
	return sweepFixture{ctx, clock, b, open(b, "id", backend.Limits{EventRetention: time.Minute})}
}

// tenant reconciles what is due (any call does, whether or not the scheduler got to it
// first: here a snapshot of another tenant), then reports whether the state of tenant name
// is kept, and how many events its log holds.
func (f sweepFixture) tenant(t *testing.T, name string) (kept bool, events int) {
	t.Helper()
	if _, err := f.s.Snapshot(f.ctx, "other", ""); err != nil {
		t.Fatal(err)
	}
	f.b.mu.Lock()
	defer f.b.mu.Unlock()
	tn := f.b.stores["id"].tenants[name]
	if tn == nil {
		return false, 0
	}
	return true, tn.log.Len()
}

func (f sweepFixture) upsert(t *testing.T, tenant, key string) {
	t.Helper()
	if _, err := f.s.Upsert(f.ctx, tenant, backend.UpsertRequest{Key: key, Value: []byte("v"), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
}

// TestSweep checks that an idle tenant's state is freed after its event retention, and that a
// cursor of the freed state yields an overflow.
func TestSweep(t *testing.T) {
	f := newSweepFixture(t)
	ctx, s, sT := f.ctx, f.s, "t"
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
	f.clock.Advance(time.Second)
	if ev, err := sub.Next(ctx); err != nil || ev.Kind != backend.EventExpire {
		t.Fatalf("Next = %+v, %v; want the expire event", ev, err)
	}
	sub.Close()
	f.clock.Advance(time.Minute) // the expire event is exactly as old as the retention
	if kept, _ := f.tenant(t, sT); !kept {
		t.Fatal("the tenant's state was freed while it had a retained event")
	}
	f.clock.Advance(time.Millisecond) // the expire event leaves the retention window
	if kept, _ := f.tenant(t, sT); kept {
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
// next write: events written after its sweep had found none left (the next event queues it
// again), and events written while the sweep was queued for the ones before them (the sweep
// queues itself again for them).
func TestSweepTenantInUse(t *testing.T) {
	f := newSweepFixture(t)
	events := func(want int, when string) {
		t.Helper()
		if kept, n := f.tenant(t, "t"); !kept || n != want {
			t.Fatalf("%s: kept %v, %d events; want %d", when, kept, n, want)
		}
	}
	f.upsert(t, "t", "first")
	f.clock.Advance(2 * time.Minute)
	events(0, "a retention after the first event")
	for i := range 100 {
		f.upsert(t, "t", fmt.Sprint("k", i%10))
	}
	f.clock.Advance(30 * time.Second)
	f.upsert(t, "t", "late")
	f.clock.Advance(30 * time.Second) // the burst is exactly as old as the retention
	events(101, "the burst and the late event within the retention")
	f.clock.Advance(time.Millisecond)
	events(1, "the burst past the retention")
	f.clock.Advance(30 * time.Second)
	events(0, "the late event past the retention")
	checkHeap(t, f.b)
	snap, err := f.s.Snapshot(f.ctx, "t", "")
	if err != nil || len(snap.Entries) != 12 || snap.Cursor.Seq != 102 {
		t.Fatalf("Snapshot = %d entries at %v, %v; want 12 at version 102", len(snap.Entries), snap.Cursor, err)
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
