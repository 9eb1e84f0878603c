package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime"
	"github.com/redis/go-redis/v9"
)

// eventWait bounds every wait for an event.
const eventWait = 5 * time.Second

func subscribe(t testing.TB, b *Backend, s runtime.Scope, after *runtime.Cursor) runtime.Subscription {
	t.Helper()
	sub, err := b.Subscribe(context.Background(), s, runtime.SubscribeRequest{After: after})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

func next(t testing.TB, sub runtime.Subscription) runtime.RawEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventWait)
	defer cancel()
	ev, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return ev
}

// expectVersions reads events and checks that they have the versions from..to in order.
func expectVersions(t testing.TB, sub runtime.Subscription, from, to uint64) {
	t.Helper()
	for v := from; v <= to; v++ {
		if ev := next(t, sub); ev.Version != v || ev.Cursor.Seq != v {
			t.Fatalf("event %+v, want version %d", ev, v)
		}
	}
}

func TestOnePumpPerTenantMiniredis(t *testing.T) {
	f := newMini(t)
	s := scope("many")
	subs := make([]runtime.Subscription, 100)
	for i := range subs {
		subs[i] = subscribe(t, f.b, s, nil)
	}
	other := subscribe(t, f.b, scope("other"), nil)
	if n := f.b.pumpCount(); n != 2 {
		t.Fatalf("%d pumps for 2 tenants, want 2", n)
	}
	upsert(t, f.b, s, "k", "1", time.Hour)
	for _, sub := range subs {
		if ev := next(t, sub); ev.Kind != runtime.EventUpsert || ev.Key != "k" {
			t.Fatalf("event %+v, want the upsert of k", ev)
		}
	}
	for _, sub := range subs {
		sub.Close()
	}
	if n := f.b.pumpCount(); n != 1 {
		t.Fatalf("%d pumps after the tenant's readers closed, want 1", n)
	}
	other.Close()
	if n := f.b.pumpCount(); n != 0 {
		t.Fatalf("%d pumps after all readers closed, want 0", n)
	}
}

func TestSlowReaderMiniredis(t *testing.T) { testSlowReader(t, newMini(t, WithReaderBuffer(4))) }
func TestSlowReaderRedis(t *testing.T)     { testSlowReader(t, newReal(t, WithReaderBuffer(4))) }

// A reader that does not read must not hold up another; it catches up later, without
// overflow while the events are retained.
func testSlowReader(t *testing.T, f fixture) {
	s := scope("slow")
	slow := subscribe(t, f.b, s, nil)
	fast := subscribe(t, f.b, s, nil)
	for i := range 50 {
		upsert(t, f.b, s, fmt.Sprint("k", i%7), "v", time.Hour)
	}
	expectVersions(t, fast, 1, 50)
	expectVersions(t, slow, 1, 50)
	upsert(t, f.b, s, "k", "v", time.Hour)
	expectVersions(t, slow, 51, 51)
	expectVersions(t, fast, 51, 51)
}

func TestTrimmedOverflowMiniredis(t *testing.T) {
	testTrimmedOverflow(t, newMini(t, WithReaderBuffer(4)))
}
func TestTrimmedOverflowRedis(t *testing.T) { testTrimmedOverflow(t, newReal(t, WithReaderBuffer(4))) }

// A reader whose events were trimmed gets an overflow and goes on after FirstAvailable.
func testTrimmedOverflow(t *testing.T, f fixture) {
	s := scope("trim")
	s.Limits.MaxEvents = 10
	slow := subscribe(t, f.b, s, nil)
	start := slow.Start()
	for range 30 {
		upsert(t, f.b, s, "k", "v", time.Hour)
	}
	// Some events may have reached the buffer before it filled; then the overflow.
	var ev runtime.RawEvent
	for ev = next(t, slow); ev.Kind != runtime.EventOverflow; ev = next(t, slow) {
		if ev.Version > 4 {
			t.Fatalf("event %+v beyond the buffer before the overflow", ev)
		}
		start = ev.Cursor
	}
	fa := runtime.Cursor{Epoch: start.Epoch, Seq: 20}
	if ev.After != start || ev.FirstAvailable != fa || ev.Cursor != fa {
		t.Fatalf("overflow %+v, want after %v, first available %v", ev, start, fa)
	}
	expectVersions(t, slow, 21, 30)

	late := subscribe(t, f.b, s, &runtime.Cursor{Epoch: start.Epoch, Seq: 3})
	if ev := next(t, late); ev.Kind != runtime.EventOverflow || ev.FirstAvailable != fa {
		t.Fatalf("late reader: %+v, want an overflow to %v", ev, fa)
	}
	expectVersions(t, late, 21, 30)
}

func TestInvalidCursorMiniredis(t *testing.T) {
	f := newMini(t)
	s := scope("inv")
	upsert(t, f.b, s, "k", "v", time.Hour)
	snap, err := f.b.Snapshot(context.Background(), s, "")
	if err != nil {
		t.Fatal(err)
	}
	ahead := snap.Cursor
	ahead.Seq++
	_, err = f.b.Subscribe(context.Background(), s, runtime.SubscribeRequest{After: &ahead})
	if !errors.Is(err, runtime.ErrInvalidCursor) {
		t.Fatalf("subscribe after %v: %v, want ErrInvalidCursor", ahead, err)
	}
}

func TestResetOverflowMiniredis(t *testing.T) { testResetOverflow(t, newMini(t)) }
func TestResetOverflowRedis(t *testing.T)     { testResetOverflow(t, newReal(t)) }
func TestResetOverflowCluster(t *testing.T)   { testResetOverflow(t, newCluster(t)) }

// Losing the tenant's state (as with a FLUSHALL, simulated by deleting the tenant's keys)
// turns into an overflow into the new epoch for live readers and for old cursors.
func testResetOverflow(t *testing.T, f fixture) {
	ctx := context.Background()
	s := scope("reset")
	upsert(t, f.b, s, "k", "v", time.Hour)
	sub := subscribe(t, f.b, s, nil)
	old := sub.Start()
	if err := f.client.Del(ctx, f.b.keys(s)...).Err(); err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub)
	if ev.Kind != runtime.EventOverflow || ev.After != old || ev.FirstAvailable.Epoch == old.Epoch || ev.FirstAvailable.Seq != 0 {
		t.Fatalf("after reset: %+v, want an overflow from %v to a new epoch", ev, old)
	}
	e := upsert(t, f.b, s, "k", "w", time.Hour)
	if e.Version != 1 {
		t.Fatalf("first upsert of the new epoch has version %d", e.Version)
	}
	if ev := next(t, sub); ev.Kind != runtime.EventUpsert || ev.Cursor != (runtime.Cursor{Epoch: ev.FirstAvailable.Epoch, Seq: 1}) && ev.Cursor.Epoch == old.Epoch {
		t.Fatalf("after overflow: %+v, want the new upsert", ev)
	}
	late := subscribe(t, f.b, s, &old)
	if ev := next(t, late); ev.Kind != runtime.EventOverflow || ev.After != old || ev.FirstAvailable.Epoch == old.Epoch {
		t.Fatalf("old cursor: %+v, want an overflow", ev)
	}
}

func TestExpireEventMiniredis(t *testing.T) {
	f := newMini(t)
	s := scope("exp")
	sub := subscribe(t, f.b, s, nil)
	e := upsert(t, f.b, s, "k", "v", 10*time.Second)
	expectVersions(t, sub, 1, 1)
	// Move the server's clock without ticking the pumps: the pump finds the due entry itself.
	f.shift(e.ExpiresAt.Sub(e.UpdatedAt))
	ev := next(t, sub)
	if ev.Kind != runtime.EventExpire || ev.Key != "k" || ev.Version != 2 || !ev.ExpiresAt.Equal(e.ExpiresAt) {
		t.Fatalf("event %+v, want the expiry of k at %v", ev, e.ExpiresAt)
	}
	if _, ok, _ := f.b.Get(context.Background(), s, "k"); ok {
		t.Fatal("expired entry returned by Get")
	}
}

// The pump blocks only until the next expiry, not for the max block time.
func TestExpireEventRedis(t *testing.T) {
	f := newReal(t, WithMaxBlock(time.Minute))
	s := scope("exp")
	sub := subscribe(t, f.b, s, nil)
	upsert(t, f.b, s, "long", "v", time.Hour)
	expectVersions(t, sub, 1, 1)
	e := upsert(t, f.b, s, "k", "v", 300*time.Millisecond)
	expectVersions(t, sub, 2, 2)
	ev := next(t, sub)
	if ev.Kind != runtime.EventExpire || ev.Key != "k" || !ev.ExpiresAt.Equal(e.ExpiresAt) {
		t.Fatalf("event %+v, want the expiry of k", ev)
	}
}

func TestTransientErrorMiniredis(t *testing.T) {
	f := newMini(t)
	s := scope("flaky")
	sub := subscribe(t, f.b, s, nil)
	f.mini.SetError("LOADING Redis is loading the dataset in memory")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if ev, err := sub.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next while the server fails: %+v %v, want to wait until the deadline", ev, err)
	}
	f.mini.SetError("")
	upsert(t, f.b, s, "k", "v", time.Hour)
	expectVersions(t, sub, 1, 1)

	// Dropped connections are covered by TestTransientErrorRedis: after Close and Restart,
	// miniredis answers no blocking command (its context stays cancelled).
}

func TestTransientErrorRedis(t *testing.T) {
	f := newReal(t)
	ctx := context.Background()
	s := scope("flaky")
	sub := subscribe(t, f.b, s, nil)
	got := make(chan runtime.RawEvent, 3)
	go func() {
		defer close(got)
		for range 3 {
			ev, err := sub.Next(ctx)
			if err != nil {
				return
			}
			got <- ev
		}
	}()
	for v := range 3 {
		// Kill every normal connection, the pump's blocked XREAD among them.
		if err := f.client.ClientKillByFilter(ctx, "TYPE", "normal").Err(); err != nil {
			t.Fatal(err)
		}
		var e runtime.RawEntry
		var err error
		for range 5 { // the client may hand out a killed connection once
			if e, err = f.b.Upsert(ctx, s, runtime.UpsertRequest{Key: "k", Value: []byte("v"), TTL: time.Hour}); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-got:
			if ev.Version != uint64(v+1) || ev.Version != e.Version {
				t.Fatalf("event %+v, want version %d", ev, v+1)
			}
		case <-time.After(eventWait):
			t.Fatalf("no event %d after the connections were killed", v+1)
		}
	}
}

// A reader that finds a new epoch in Redis before its pump does nudges the pump, so the other
// readers learn of the reset without waiting for the max block time.
func TestResetNudgesPumpMiniredis(t *testing.T) {
	f := newMini(t, WithMaxBlock(time.Minute))
	ctx := context.Background()
	s := scope("nudge")
	upsert(t, f.b, s, "k", "v", time.Hour)
	live := subscribe(t, f.b, s, nil)
	old := live.Start()
	if err := f.client.Del(ctx, f.b.keys(s)...).Err(); err != nil {
		t.Fatal(err)
	}
	late := subscribe(t, f.b, s, &old)
	for _, sub := range []runtime.Subscription{late, live} {
		if ev := next(t, sub); ev.Kind != runtime.EventOverflow || ev.After != old || ev.FirstAvailable.Epoch == old.Epoch {
			t.Fatalf("after reset: %+v, want an overflow into the new epoch", ev)
		}
	}
}

// A failover to a replica that lacked the last writes makes the versions go back: readers
// ahead of the new last version get an overflow, and then the versions issued again.
func TestRollbackOverflowMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	s := scope("rollback")
	for range 3 {
		upsert(t, f.b, s, "k", "v", time.Hour)
	}
	sub := subscribe(t, f.b, s, nil)
	at3 := sub.Start()
	// Rebuild the state as a replica that saw only version 1 would have it.
	keys := f.b.keys(s)
	first, err := f.client.XRange(ctx, keys[2], "1-0", "1-0").Result()
	if err != nil || len(first) != 1 {
		t.Fatalf("xrange: %v %v", first, err)
	}
	pipe := f.client.TxPipeline()
	pipe.Del(ctx, keys[2])
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: keys[2], ID: "1-0", Values: first[0].Values})
	pipe.HSet(ctx, keys[0], "#seq", 1)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub)
	if want := (runtime.Cursor{Epoch: at3.Epoch, Seq: 0}); ev.Kind != runtime.EventOverflow || ev.After != at3 || ev.FirstAvailable != want {
		t.Fatalf("after the rollback: %+v, want an overflow from %v to %v", ev, at3, want)
	}
	expectVersions(t, sub, 1, 1)
	upsert(t, f.b, s, "k", "again", time.Hour)
	if ev := next(t, sub); ev.Version != 2 || string(ev.Entry.Value) != "again" {
		t.Fatalf("event %+v, want the new version 2", ev)
	}
}

// Losing only the state hash (an eviction, say) starts a new epoch too: writes go on, and the
// old stream and expiries are dropped rather than blocking the new versions.
func TestPartialLossMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	s := scope("partial")
	for range 3 {
		upsert(t, f.b, s, "k", "v", time.Hour)
	}
	upsert(t, f.b, s, "gone", "v", time.Second)
	sub := subscribe(t, f.b, s, nil)
	old := sub.Start()
	if err := f.client.Del(ctx, f.b.keys(s)[0]).Err(); err != nil {
		t.Fatal(err)
	}
	f.advance(t, time.Second)
	if e := upsert(t, f.b, s, "k", "new", time.Hour); e.Version != 1 {
		t.Fatalf("first upsert after the loss: version %d, want 1", e.Version)
	}
	if ev := next(t, sub); ev.Kind != runtime.EventOverflow || ev.After != old || ev.FirstAvailable.Epoch == old.Epoch {
		t.Fatalf("after the loss: %+v, want an overflow into the new epoch", ev)
	}
	if ev := next(t, sub); ev.Kind != runtime.EventUpsert || ev.Key != "k" || ev.Version != 1 {
		t.Fatalf("event %+v, want the new upsert, and no expire of the lost entry", ev)
	}
	snap, err := f.b.Snapshot(ctx, s, "")
	if err != nil || len(snap.Entries) != 1 || snap.Cursor.Seq != 1 {
		t.Fatalf("snapshot after the loss: %+v, %v", snap, err)
	}
}
