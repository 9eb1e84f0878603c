package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// eventWait bounds every wait for an event.
const eventWait = 30 * time.Second

func subscribe(t testing.TB, st backend.Store, tenant string, after *backend.Cursor) backend.Subscription {
	t.Helper()
	sub, err := st.Subscribe(context.Background(), tenant, backend.SubscribeRequest{After: after})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

func next(t testing.TB, sub backend.Subscription) backend.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventWait)
	defer cancel()
	ev, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return *ev
}

// expectVersions reads events and checks that they have the versions from..to in order.
func expectVersions(t testing.TB, sub backend.Subscription, from, to uint64) {
	t.Helper()
	for v := from; v <= to; v++ {
		if ev := next(t, sub); ev.Version != v || ev.Cursor().Seq != v {
			t.Fatalf("event %+v, want version %d", ev, v)
		}
	}
}

func TestOnePumpPerTenantMiniredis(t *testing.T) {
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{}), "many"
	subs := make([]backend.Subscription, 100)
	for i := range subs {
		subs[i] = subscribe(t, st, ten, nil)
	}
	other := subscribe(t, st, "other", nil)
	if n := f.b.pumpCount(); n != 2 {
		t.Fatalf("%d pumps for 2 tenants, want 2", n)
	}
	upsert(t, st, ten, "k", "1", time.Hour)
	for _, sub := range subs {
		if ev := next(t, sub); ev.Kind != backend.EventUpsert || ev.Key != "k" {
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
	st, ten := f.open(t, backend.Limits{}), "slow"
	slow := subscribe(t, st, ten, nil)
	fast := subscribe(t, st, ten, nil)
	for i := range 50 {
		upsert(t, st, ten, fmt.Sprint("k", i%7), "v", time.Hour)
	}
	expectVersions(t, fast, 1, 50)
	expectVersions(t, slow, 1, 50)
	upsert(t, st, ten, "k", "v", time.Hour)
	expectVersions(t, slow, 51, 51)
	expectVersions(t, fast, 51, 51)
}

func TestStreamTrimmedMiniredis(t *testing.T) { testStreamTrimmed(t, newMini(t)) }
func TestStreamTrimmedRedis(t *testing.T)     { testStreamTrimmed(t, newReal(t)) }

// The writes trim the stream to about MaxEvents entries: to whole stream nodes, so it may keep
// up to a node more (stream-node-max-entries, 100 by default, as the suites' servers run;
// miniredis trims exactly), never fewer.
func testStreamTrimmed(t *testing.T, f fixture) {
	st, ten := f.open(t, backend.Limits{MaxEvents: 10}), "trimmed"
	for i := range 600 {
		upsert(t, st, ten, fmt.Sprint("k", i%7), "v", time.Hour)
		if n := f.client.XLen(context.Background(), st.keys(ten)[keyEvents]).Val(); n > 10+100 || n < min(10, int64(i+1)) {
			t.Fatalf("after %d single upserts the stream holds %d entries, want %d to %d", i+1, n, min(10, i+1), 10+100)
		}
	}
}

func TestTrimmedOverflowMiniredis(t *testing.T) {
	testTrimmedOverflow(t, newMini(t, WithReaderBuffer(4)))
}
func TestTrimmedOverflowRedis(t *testing.T) { testTrimmedOverflow(t, newReal(t, WithReaderBuffer(4))) }

// A reader whose events were trimmed gets an overflow and goes on after FirstAvailable.
func testTrimmedOverflow(t *testing.T, f fixture) {
	st, ten := f.open(t, backend.Limits{MaxEvents: 10}), "trim"
	slow := subscribe(t, st, ten, nil)
	start := slow.Start()
	for range 30 {
		upsert(t, st, ten, "k", "v", time.Hour)
	}
	// Some events may have reached the buffer before it filled; then the overflow.
	var ev backend.Event
	for ev = next(t, slow); ev.Kind != backend.EventOverflow; ev = next(t, slow) {
		if ev.Version > 4 {
			t.Fatalf("event %+v beyond the buffer before the overflow", ev)
		}
		start = ev.Cursor()
	}
	fa := backend.Cursor{Epoch: start.Epoch, Seq: 20}
	if ev.After != start || ev.FirstAvailable != fa || ev.Cursor() != fa {
		t.Fatalf("overflow %+v, want after %v, first available %v", ev, start, fa)
	}
	expectVersions(t, slow, 21, 30)

	late := subscribe(t, st, ten, &backend.Cursor{Epoch: start.Epoch, Seq: 3})
	if ev := next(t, late); ev.Kind != backend.EventOverflow || ev.FirstAvailable != fa {
		t.Fatalf("late reader: %+v, want an overflow to %v", ev, fa)
	}
	expectVersions(t, late, 21, 30)
}

func TestInvalidCursorMiniredis(t *testing.T) {
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{}), "inv"
	upsert(t, st, ten, "k", "v", time.Hour)
	snap, err := st.Snapshot(context.Background(), ten, "")
	if err != nil {
		t.Fatal(err)
	}
	ahead := snap.Cursor
	ahead.Seq++
	_, err = st.Subscribe(context.Background(), ten, backend.SubscribeRequest{After: &ahead})
	if !errors.Is(err, backend.ErrInvalidCursor) {
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
	st, ten := f.open(t, backend.Limits{}), "reset"
	upsert(t, st, ten, "k", "v", time.Hour)
	sub := subscribe(t, st, ten, nil)
	old := sub.Start()
	if err := f.client.Del(ctx, st.keys(ten)...).Err(); err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub)
	if ev.Kind != backend.EventOverflow || ev.After != old || ev.FirstAvailable.Epoch == old.Epoch || ev.FirstAvailable.Seq != 0 {
		t.Fatalf("after reset: %+v, want an overflow from %v to a new epoch", ev, old)
	}
	e := upsert(t, st, ten, "k", "w", time.Hour)
	if e.Version != 1 {
		t.Fatalf("first upsert of the new epoch has version %d", e.Version)
	}
	if ev2 := next(t, sub); ev2.Kind != backend.EventUpsert || ev2.Cursor() != (backend.Cursor{Epoch: ev.FirstAvailable.Epoch, Seq: 1}) {
		t.Fatalf("after overflow: %+v, want the new upsert", ev2)
	}
	late := subscribe(t, st, ten, &old)
	if ev := next(t, late); ev.Kind != backend.EventOverflow || ev.After != old || ev.FirstAvailable.Epoch == old.Epoch {
		t.Fatalf("old cursor: %+v, want an overflow", ev)
	}
}

func TestExpireEventMiniredis(t *testing.T) {
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{}), "exp"
	sub := subscribe(t, st, ten, nil)
	e := upsert(t, st, ten, "k", "v", 10*time.Second)
	expectVersions(t, sub, 1, 1)
	// Move the server's clock without ticking the pumps: the pump's next read finds the
	// entry due, and the pump ticks itself. (Its timer runs on the local clock, which did
	// not move.)
	f.shift(time.Duration(e.ExpiresAt-e.UpdatedAt) * time.Millisecond)
	f.b.nudgeAll()
	ev := next(t, sub)
	if ev.Kind != backend.EventExpire || ev.Key != "k" || ev.Version != 2 || ev.ExpiresAt != e.ExpiresAt {
		t.Fatalf("event %+v, want the expiry of k at %v", ev, e.ExpiresAt)
	}
	if _, ok, _ := st.Get(context.Background(), ten, "k"); ok {
		t.Fatal("expired entry returned by Get")
	}
}

// The pump ticks when the next expiry is due, on its own timer, not at the poll interval.
func TestExpireEventRedis(t *testing.T) {
	f := newReal(t, WithPollInterval(time.Minute))
	st, ten := f.open(t, backend.Limits{}), "exp"
	sub := subscribe(t, st, ten, nil)
	upsert(t, st, ten, "long", "v", time.Hour)
	expectVersions(t, sub, 1, 1)
	e := upsert(t, st, ten, "k", "v", 300*time.Millisecond)
	expectVersions(t, sub, 2, 2)
	ev := next(t, sub)
	if ev.Kind != backend.EventExpire || ev.Key != "k" || ev.ExpiresAt != e.ExpiresAt {
		t.Fatalf("event %+v, want the expiry of k", ev)
	}
}

// A pump holds no goroutine while it only waits for an expiry: its goroutine ends once it has
// nothing to do, and the timer of the next expiry starts one when the expiry is due.
func TestPumpRestsRedis(t *testing.T) {
	f := newReal(t, WithPollInterval(time.Minute))
	st, ten := f.open(t, backend.Limits{}), "rest"
	upsert(t, st, ten, "long", "v", time.Hour) // an expiry due, far off, when the pump starts
	sub := subscribe(t, st, ten, nil)
	p := sub.(*subscription).p
	waitFor(t, "the pump to rest", func() bool { return !p.started.Load() }, &p.mu)
	for i := range 3 {
		e := upsert(t, st, ten, "k", "v", 200*time.Millisecond)
		if ev := next(t, sub); ev.Kind != backend.EventUpsert || ev.Version != e.Version {
			t.Fatalf("event %+v, want the upsert of k, version %d", ev, e.Version)
		}
		waitFor(t, "the pump to rest", func() bool { return !p.started.Load() }, &p.mu)
		ev := next(t, sub) // started by the expiry's timer
		if ev.Kind != backend.EventExpire || ev.Key != "k" || ev.ExpiresAt != e.ExpiresAt {
			t.Fatalf("round %d: event %+v, want the expiry of k", i, ev)
		}
	}
	waitFor(t, "the pump to rest", func() bool { return !p.started.Load() }, &p.mu)
}

func TestTransientErrorMiniredis(t *testing.T) {
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{}), "flaky"
	sub := subscribe(t, st, ten, nil)
	f.mini.SetError("LOADING Redis is loading the dataset in memory")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if ev, err := sub.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next while the server fails: %+v %v, want to wait until the deadline", ev, err)
	}
	f.mini.SetError("")
	upsert(t, st, ten, "k", "v", time.Hour)
	expectVersions(t, sub, 1, 1)

	// Dropped connections are covered by TestTransientErrorRedis: after Close and Restart,
	// miniredis answers no blocking command (its context stays cancelled).
}

func TestTransientErrorRedis(t *testing.T) {
	f := newReal(t)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "flaky"
	sub := subscribe(t, st, ten, nil)
	got := make(chan backend.Event, 3)
	go func() {
		defer close(got)
		for range 3 {
			ev, err := sub.Next(ctx)
			if err != nil {
				return
			}
			got <- *ev
		}
	}()
	for v := range 3 {
		// Kill every normal connection, the pump's blocked XREAD among them.
		if err := f.client.ClientKillByFilter(ctx, "TYPE", "normal").Err(); err != nil {
			t.Fatal(err)
		}
		var e backend.Entry
		var err error
		for range 5 { // the client may hand out a killed connection once
			if e, err = st.Upsert(ctx, ten, backend.UpsertRequest{Key: "k", Value: []byte("v"), TTL: time.Hour}); err == nil {
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
// readers learn of the reset without waiting for the poll: here the reader after a snapshot
// taken after the tenant's keys were deleted (the snapshot made the new epoch; the pump, live,
// would take a cursor of its own epoch without a read).
func TestResetNudgesPumpMiniredis(t *testing.T) {
	f := newMini(t, WithPollInterval(time.Minute))
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "nudge"
	upsert(t, st, ten, "k", "v", time.Hour)
	live := subscribe(t, st, ten, nil)
	old := live.Start()
	livePump(t, f.b, st, ten)
	if err := f.client.Del(ctx, st.keys(ten)...).Err(); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Snapshot(ctx, ten, "")
	if err != nil || snap.Cursor.Epoch == old.Epoch {
		t.Fatalf("snapshot after the reset: %v, %v; want a new epoch", snap.Cursor, err)
	}
	fresh := subscribe(t, st, ten, &snap.Cursor)
	if ev := next(t, live); ev.Kind != backend.EventOverflow || ev.After != old || ev.FirstAvailable.Epoch != snap.Cursor.Epoch {
		t.Fatalf("after reset: %+v, want an overflow into the new epoch %s", ev, snap.Cursor.Epoch)
	}
	late := subscribe(t, st, ten, &old)
	if ev := next(t, late); ev.Kind != backend.EventOverflow || ev.After != old || ev.FirstAvailable.Epoch != snap.Cursor.Epoch {
		t.Fatalf("after the old cursor: %+v, want an overflow into the new epoch %s", ev, snap.Cursor.Epoch)
	}
	e := upsert(t, st, ten, "k", "new", time.Hour)
	for _, sub := range []backend.Subscription{fresh, live, late} {
		if ev := next(t, sub); ev.Version != e.Version || ev.Epoch != e.Epoch {
			t.Fatalf("after the reset: %+v, want the upsert of %s version %d", ev, e.Epoch, e.Version)
		}
	}
}

// A failover to a replica that lacked the last writes makes the versions go back: readers
// ahead of the new last version get an overflow, and then the versions issued again.
func TestRollbackOverflowMiniredis(t *testing.T) {
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{}), "rollback"
	for range 3 {
		upsert(t, st, ten, "k", "v", time.Hour)
	}
	sub := subscribe(t, st, ten, nil)
	at3 := sub.Start()
	rollBack(t, f, st, ten)
	f.b.nudgeAll() // as the failover's new pub/sub connection does
	ev := next(t, sub)
	if want := (backend.Cursor{Epoch: at3.Epoch, Seq: 0}); ev.Kind != backend.EventOverflow || ev.After != at3 || ev.FirstAvailable != want {
		t.Fatalf("after the rollback: %+v, want an overflow from %v to %v", ev, at3, want)
	}
	expectVersions(t, sub, 1, 1)
	upsert(t, st, ten, "k", "again", time.Hour)
	if ev := next(t, sub); ev.Version != 2 || string(ev.Value) != "again" {
		t.Fatalf("event %+v, want the new version 2", ev)
	}
}

// Losing only the state hash (an eviction, say) starts a new epoch too: writes go on, and the
// old stream and expiries are dropped rather than blocking the new versions.
func TestPartialLossMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "partial"
	for range 3 {
		upsert(t, st, ten, "k", "v", time.Hour)
	}
	upsert(t, st, ten, "gone", "v", time.Second)
	sub := subscribe(t, st, ten, nil)
	old := sub.Start()
	if err := f.client.Del(ctx, st.keys(ten)[keyState]).Err(); err != nil {
		t.Fatal(err)
	}
	f.advance(t, time.Second)
	if e := upsert(t, st, ten, "k", "new", time.Hour); e.Version != 1 {
		t.Fatalf("first upsert after the loss: version %d, want 1", e.Version)
	}
	if ev := next(t, sub); ev.Kind != backend.EventOverflow || ev.After != old || ev.FirstAvailable.Epoch == old.Epoch {
		t.Fatalf("after the loss: %+v, want an overflow into the new epoch", ev)
	}
	if ev := next(t, sub); ev.Kind != backend.EventUpsert || ev.Key != "k" || ev.Version != 1 {
		t.Fatalf("event %+v, want the new upsert, and no expire of the lost entry", ev)
	}
	snap, err := st.Snapshot(ctx, ten, "")
	if err != nil || len(snap.Entries) != 1 || snap.Cursor.Seq != 1 {
		t.Fatalf("snapshot after the loss: %+v, %v", snap, err)
	}
}

func TestBatchEntryMiniredis(t *testing.T) { testBatchEntry(t, newMini(t)) }
func TestBatchEntryRedis(t *testing.T)     { testBatchEntry(t, newReal(t)) }

// A batch of writes is one stream entry, kept whole by the MaxEvents trim, but a read counts
// only the last MaxEvents versions as retained: a reader from before them gets the overflow
// to them, as on every backend, and a reader from inside the entry gets the events after its
// position only.
func testBatchEntry(t *testing.T, f fixture) {
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{MaxEvents: 3}), "batch"
	ops := make([]writeOp, 5)
	for i := range ops {
		ops[i] = writeOp{code: opUpsert, key: fmt.Sprint("k", i), value: []byte("v"), ttl: time.Hour}
	}
	res, err := runWrite(ctx, f.b.scripts, st.keys(ten), "", st.limits, ops)
	if err != nil {
		t.Fatal(err)
	}
	epoch := res[0].epoch
	if ids, err := f.client.XRange(ctx, st.keys(ten)[keyEvents], "-", "+").Result(); err != nil || len(ids) != 1 || ids[0].ID != "5-4" {
		t.Fatalf("stream entries %v, %v; want one, 5-4", ids, err)
	}
	r, err := runRead(ctx, f.b.scripts, st.keys(ten), st.limits, backend.Cursor{Epoch: epoch}, 10)
	if err != nil || r.head != 5 || r.first != 3 || len(r.events) != 5 {
		t.Fatalf("read: head %d, first %d, %d events, %v; want 5, 3, 5", r.head, r.first, len(r.events), err)
	}
	early := subscribe(t, st, ten, &backend.Cursor{Epoch: epoch, Seq: 0})
	fa := backend.Cursor{Epoch: epoch, Seq: 2}
	if ev := next(t, early); ev.Kind != backend.EventOverflow || ev.FirstAvailable != fa {
		t.Fatalf("reader from 0: %+v, want an overflow to %v", ev, fa)
	}
	expectVersions(t, early, 3, 5)
	inside := subscribe(t, st, ten, &backend.Cursor{Epoch: epoch, Seq: 3})
	expectVersions(t, inside, 4, 5)
}

// A pump whose head is inside a stream entry (the first events of a batch delivered, the rest
// not) reads the rest and delivers it without making its readers catch up from Redis.
func TestPumpReadsInsideEntryMiniredis(t *testing.T) {
	f := newNoticeFixture(t, newMini)
	f.quiesce(t)
	p := f.pump()
	f.b.mu.Lock()
	delete(f.b.watch, p.channel) // the hub drops the tenant's notices from now on
	f.b.mu.Unlock()
	ops := []writeOp{
		{code: opUpsert, key: "a", value: []byte("1"), ttl: time.Hour},
		{code: opUpsert, key: "b", value: []byte("2"), ttl: time.Hour},
		{code: opUpsert, key: "c", value: []byte("3"), ttl: time.Hour},
	}
	res, err := runWrite(context.Background(), f.b.scripts, f.other.keys("t"), "", f.other.limits, ops)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	l := p.extend(res[0].epoch, []backend.Event{{Kind: backend.EventUpsert, Epoch: res[0].epoch, Version: res[0].version,
		Key: "a", Value: []byte("1"), At: res[0].updatedAt, CreatedAt: res[0].createdAt, ExpiresAt: res[0].expiresAt}})
	p.mu.Unlock()
	if l == nil {
		t.Fatal("the first event of the batch was not appended")
	}
	l.Wake()
	f.expect(t, res[0].version, "a", []byte("1"))
	reads := f.reads.n.Load()
	p.nudge()
	f.expect(t, res[1].version, "b", []byte("2"))
	f.expect(t, res[2].version, "c", []byte("3"))
	if n := f.reads.n.Load() - reads; n != 1 {
		t.Fatalf("%d reads for the rest of the entry, want the pump's one", n)
	}
}

func TestReadBoundedMiniredis(t *testing.T) { testReadBounded(t, newMini(t)) }
func TestReadBoundedRedis(t *testing.T)     { testReadBounded(t, newReal(t)) }

// A read of count entries returns about count events however many each entry holds (it asks
// for the versions up to count+maxCallEvents after its start), and at least the entry of the
// version after its start, even one larger than a call adds.
func testReadBounded(t *testing.T, f fixture) {
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "bounded"
	keys := st.keys(ten)
	batch := func(n int) {
		t.Helper()
		ops := make([]writeOp, n)
		for i := range ops {
			ops[i] = writeOp{code: opUpsert, key: fmt.Sprint("k", i), value: []byte("v"), ttl: time.Hour}
		}
		if _, err := runWrite(ctx, f.b.scripts, keys, "", st.limits, ops); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		batch(maxBatch) // versions 1 to 640, an entry of 64 each
	}
	const count = 100
	r, err := runRead(ctx, f.b.scripts, keys, st.limits, backend.Cursor{}, count)
	if err != nil {
		t.Fatal(err)
	}
	tail, err := readTail(ctx, f.b.scripts, keys, st.limits, r.epoch, 0, count)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range [][]backend.Event{r.events, tail.events} {
		if n := len(got); n == 0 || n > count+maxCallEvents || got[0].Version != 1 {
			t.Fatalf("a read of %d entries from 0 of 640 versions: %d events, want 1 to %d from version 1", count, n, count+maxCallEvents)
		}
	}
	batch(2 * maxCallEvents) // one entry of more events than a call of the batcher adds
	r, err = runRead(ctx, f.b.scripts, keys, st.limits, backend.Cursor{Epoch: r.epoch, Seq: 640}, 1)
	if err != nil || len(r.events) != 2*maxCallEvents || r.events[0].Version != 641 {
		t.Fatalf("a read of the large entry: %d events, %v; want %d from 641", len(r.events), err, 2*maxCallEvents)
	}
}

// A write of the old epoch whose reply comes after the tenant's state was lost and the pump
// moved to the new epoch does not make the new epoch's events look trimmed: its version (51
// here, with MaxEvents 10) once made every reader drop the new epoch's first versions from its
// log, read them from Redis, find them "trimmed" again, and so on, without end. No poll: one
// between the late write's run and the loss would read its version 51, which the reader would
// then get before the overflow (it did in CI, under load).
func TestLateWriteAfterResetMiniredis(t *testing.T) {
	testLateWriteAfterReset(t, newMini(t, WithPollInterval(time.Hour)))
}

func TestLateWriteAfterResetRedis(t *testing.T) {
	testLateWriteAfterReset(t, newReal(t, WithPollInterval(time.Hour)))
}

func testLateWriteAfterReset(t *testing.T, f fixture) {
	ctx := context.Background()
	hold := holdWrite(f)
	st, ten := f.open(t, backend.Limits{MaxEvents: 10}), "late"
	sub := subscribe(t, st, ten, nil)
	for i := range 50 { // read as they come: the stream keeps the last 10
		upsert(t, st, ten, fmt.Sprint("k", i%5), "v", time.Hour)
		expectVersions(t, sub, uint64(i+1), uint64(i+1))
	}

	// Version 51 of the old epoch; its reply waits.
	late := hold.lateUpsert(t, st, ten, "late")
	if err := f.client.Del(ctx, st.keys(ten)...).Err(); err != nil { // the tenant's state is lost
		t.Fatal(err)
	}
	f.b.nudgeAll()
	if ev := next(t, sub); ev.Kind != backend.EventOverflow {
		t.Fatalf("after the loss: %+v, want an overflow", ev)
	}
	close(hold.release)
	<-late
	for i := range 5 {
		upsert(t, st, ten, fmt.Sprint("n", i), "v", time.Hour)
	}
	expectVersions(t, sub, 1, 5)
}

// After a rollback that the pump saw by its head, a new reader starts at the tenant's last
// version in Redis, not at the last version this backend's writes returned before: it once
// started at 3, and versions 2 and 3, issued again, never reached it, with no overflow.
func TestRollbackNewReaderMiniredis(t *testing.T) { testRollbackNewReader(t, newMini(t)) }

func TestRollbackNewReaderRedis(t *testing.T) { testRollbackNewReader(t, newReal(t)) }

func testRollbackNewReader(t *testing.T, f fixture) {
	st, ten := f.open(t, backend.Limits{}), "rollback"
	sub := subscribe(t, st, ten, nil)
	for range 3 {
		upsert(t, st, ten, "k", "v", time.Hour)
	}
	expectVersions(t, sub, 1, 3)
	rollBack(t, f, st, ten)
	f.b.nudgeAll()
	if ev := next(t, sub); ev.Kind != backend.EventOverflow {
		t.Fatalf("after the rollback: %+v, want an overflow", ev)
	}
	expectVersions(t, sub, 1, 1)
	wantNextFrom(t, st, ten, 2)
}

// A rollback that the pump's head does not show (the versions lost were made by this backend's
// writes while the pump's read was out, so it never delivered them) is seen by those writes:
// the next read finds the tenant behind them, and new readers read where to start.
func TestRollbackUnseenByHeadMiniredis(t *testing.T) {
	f := newMini(t)
	var armed atomic.Bool
	hold := holdFirst(func(c redis.Cmder) bool { return armed.Load() && c.Name() == "xrange" }) // the pump's read
	f.client.AddHook(hold)
	st, ten := f.open(t, backend.Limits{}), "unseen"
	sub := subscribe(t, st, ten, nil)
	upsert(t, st, ten, "k", "v", time.Hour)
	expectVersions(t, sub, 1, 1)
	armed.Store(true)
	f.b.nudgeAll() // the pump reads; its read waits before it is sent
	<-hold.held
	upsert(t, st, ten, "k", "v2", time.Hour) // versions 2 and 3 return while the read is out:
	upsert(t, st, ten, "k", "v3", time.Hour) // the pump does not deliver them, and reads again
	rollBack(t, f, st, ten)
	close(hold.release)
	p := st.pump(ten)
	waitPump(t, p, "the pump did not see that the tenant went back behind this backend's writes", func(p *pump) bool {
		return p.forks.Load() == 1 && !p.stale && !p.busy
	})
	wantNextFrom(t, st, ten, 2)
}

// rollBack rebuilds the state of tenant of st as a replica that saw only version 1 would have
// it, as a failover to it does.
func rollBack(t *testing.T, f fixture, st *store, ten string) {
	t.Helper()
	ctx := context.Background()
	keys := st.keys(ten)
	first, err := f.client.XRange(ctx, keys[keyEvents], "1-0", "1-0").Result()
	if err != nil || len(first) != 1 {
		t.Fatalf("xrange: %v %v", first, err)
	}
	pipe := f.client.TxPipeline()
	pipe.Del(ctx, keys[keyEvents])
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: keys[keyEvents], ID: "1-0", Values: first[0].Values})
	pipe.HSet(ctx, keys[keyState], metaSeq, 1)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// wantNextFrom opens a reader of tenant, writes three versions and checks that the reader's
// first event is version from, the first of them: none is skipped.
func wantNextFrom(t *testing.T, st *store, ten string, from uint64) {
	t.Helper()
	fresh := subscribe(t, st, ten, nil)
	for _, v := range []string{"a", "b", "c"} {
		upsert(t, st, ten, "k", v, time.Hour)
	}
	if ev := next(t, fresh); ev.Version != from || string(ev.Value) != "a" {
		t.Fatalf("a new reader from %v: first event %s version %d %q, want version %d \"a\"", fresh.Start(), ev.Kind, ev.Version, ev.Value, from)
	}
}

// A rollback that the new master's writes pass before the pump reads: versions 2 and 3 issued
// again and 4 added, in one call of another process. The pump's head (3) is behind Redis's (4)
// as after any write, and only the times of the events tell that Redis's version 3 is not
// the one the readers got: they once got version 4 as if it followed, and never heard of the
// new 2 and 3. Now they get an overflow, and then the history Redis has.
func TestRollbackPassedMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "passed"
	write := func(keys ...string) { // as another process does: no pump of this backend hears of it but by its notice
		t.Helper()
		ops := make([]writeOp, len(keys))
		for i, k := range keys {
			ops[i] = writeOp{code: opUpsert, key: k, value: []byte(k), ttl: time.Hour}
		}
		if _, err := runWrite(ctx, f.b.scripts, st.keys(ten), "", st.limits, ops); err != nil {
			t.Fatal(err)
		}
	}
	sub := subscribe(t, st, ten, nil)
	for _, k := range []string{"x", "y", "z"} {
		write(k)
	}
	expectVersions(t, sub, 1, 3)
	rollBack(t, f, st, ten)
	f.advance(t, time.Millisecond) // the new master writes later than the old one did
	write("a", "b", "c")           // versions 2, 3 and 4 of the new history
	if ev := next(t, sub); ev.Kind != backend.EventOverflow {
		t.Fatalf("after versions 2 and 3 were issued again and 4 added: %s version %d %q, want an overflow", ev.Kind, ev.Version, ev.Key)
	}
	for v, k := range []string{"x", "a", "b", "c"} {
		if ev := next(t, sub); ev.Version != uint64(v+1) || ev.Key != k {
			t.Fatalf("after the overflow: version %d %q, want version %d %q", ev.Version, ev.Key, v+1, k)
		}
	}
}

// A rollback that this backend's own writes pass before the pump reads: the first write after
// it is issued version 2 again, which the pump has at another time, and asks for a read; the
// next ones, 3 and 4, came while the pump was not reading (here: its reads fail and it waits
// to retry). Version 4 once extended the log, as a write after the head does, and the read
// then found Redis's history at the new head and nothing amiss: the readers got version 4
// after the old 3 and never heard of the new 2 and 3. Now nothing extends the log until a
// read sent after the suspicion completes, and the readers get an overflow.
func TestRollbackPassedByOwnWritesMiniredis(t *testing.T) {
	f := newMini(t)
	reads := &failReads{failed: make(chan struct{}, 1)}
	f.client.AddHook(reads)
	st, ten := f.open(t, backend.Limits{}), "own"
	sub := subscribe(t, st, ten, nil)
	for _, k := range []string{"x", "y", "z"} {
		upsert(t, st, ten, k, k, time.Hour)
	}
	expectVersions(t, sub, 1, 3)
	reads.on.Store(true)
	rollBack(t, f, st, ten)
	f.advance(t, time.Millisecond) // the new master writes later than the old one did
	upsert(t, st, ten, "a", "a", time.Hour)
	// The pump's reads fail, and it waits longer after each: after the fourth, 80 ms.
	p := st.b.pumps[tenantKey{st.id, ten}]
	for range 4 {
		select {
		case <-reads.failed:
		case <-time.After(eventWait):
			t.Fatal("the pump did not read after a write of a version it had at another time")
		}
	}
	for deadline := time.Now().Add(eventWait); ; time.Sleep(time.Millisecond) {
		p.mu.Lock()
		busy := p.busy
		p.mu.Unlock()
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pump's failed read did not end")
		}
	}
	upsert(t, st, ten, "b", "b", time.Hour)
	upsert(t, st, ten, "c", "c", time.Hour)
	reads.on.Store(false)
	if ev := next(t, sub); ev.Kind != backend.EventOverflow {
		t.Fatalf("after versions 2 and 3 were issued again and 4 added by this backend: %s version %d %q, want an overflow", ev.Kind, ev.Version, ev.Key)
	}
	for v, k := range []string{"x", "a", "b", "c"} {
		if ev := next(t, sub); ev.Version != uint64(v+1) || ev.Key != k {
			t.Fatalf("after the overflow: version %d %q, want version %d %q", ev.Version, ev.Key, v+1, k)
		}
	}
}

// failReads is a hook that fails the pumps' reads (the pipelines with an XRANGE) while on is
// set, and tells of each on failed if it has room.
type failReads struct {
	on     atomic.Bool
	failed chan struct{}
}

func (h *failReads) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *failReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *failReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.on.Load() && slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() == "xrange" }) {
			select {
			case h.failed <- struct{}{}:
			default:
			}
			return errors.New("test: the read fails")
		}
		return next(ctx, cmds)
	}
}

// A rollback whose new master issues the lost versions again in a call whose events are too
// large for its notice (which then tells only the epoch and the last version, the pump's head
// here) is seen all the same: the notice carries the call's time, which differs from that of
// the event the pump has at that version. The pump took such a notice for one of versions it
// had, read nothing, and appended the next write's event after its head: its readers kept the
// lost versions 2 and 3, never got the new ones, and no check found it any more.
func TestRollbackBigNoticeMiniredis(t *testing.T) {
	f := newMini(t, WithPollInterval(time.Hour))
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{MaxPayloadBytes: noticeMax}), "big"
	write := func(value string, keys ...string) { // as another process does
		t.Helper()
		ops := make([]writeOp, len(keys))
		for i, k := range keys {
			ops[i] = writeOp{code: opUpsert, key: k, value: []byte(value), ttl: time.Hour}
		}
		if _, err := runWrite(ctx, f.b.scripts, st.keys(ten), "", st.limits, ops); err != nil {
			t.Fatal(err)
		}
	}
	sub := subscribe(t, st, ten, nil)
	p := st.pump(ten)
	waitPump(t, p, "the pump's channel is not checked", func(p *pump) bool { return p.settled != 0 })
	for _, k := range []string{"x", "y", "z"} {
		write(k, k)
	}
	expectVersions(t, sub, 1, 3)
	waitPump(t, p, "the pump stays busy", func(p *pump) bool { return !p.stale && !p.busy })
	rollBack(t, f, st, ten)
	f.shift(time.Millisecond)                         // the new master writes later than the old one did
	write(strings.Repeat("b", noticeMax/2), "a", "b") // versions 2 and 3 again: a notice without events
	write("c", "c")                                   // version 4, whose notice continues the pump's log
	if ev := next(t, sub); ev.Kind != backend.EventOverflow {
		t.Fatalf("after versions 2 and 3 were issued again: %s version %d %q, want an overflow", ev.Kind, ev.Version, ev.Key)
	}
	for v, k := range []string{"x", "a", "b", "c"} {
		if ev := next(t, sub); ev.Version != uint64(v+1) || ev.Key != k {
			t.Fatalf("after the overflow: version %d %q, want version %d %q", ev.Version, ev.Key, v+1, k)
		}
	}
}
