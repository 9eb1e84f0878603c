package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// During a rolling upgrade, a writer of an older version of this package stamps its events with
// the time of their call but leaves the meta's #at as the last writer of this version set it.
// A pump that jumps a gap (the events after its head were trimmed before it read them) took
// its new head's time from #at, that of an older version, and its next read, which holds the
// event at that head with its own time, took the tenant for going back: a needless overflow
// (and a fork, so that every reader read again from the first version Redis keeps).
func TestGapJumpOlderWriterMiniredis(t *testing.T) { testGapJumpOlderWriter(t, 20) }

// The same when the older writer wrote more versions than the read that jumps the gap reaches
// (it reads 100 entries after the pump's head, up to maxCallEvents versions more): the read
// holds no event at the tenant's last version, whose time it then took from #at again.
func TestGapJumpFarOlderWriterMiniredis(t *testing.T) { testGapJumpOlderWriter(t, 400) }

func testGapJumpOlderWriter(t *testing.T, n int) {
	f := newMini(t, WithPollInterval(time.Hour))
	var reads readCounter
	f.client.AddHook(&reads)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{MaxEvents: 10}), "upgrade"
	keys := st.keys(ten)
	sub := subscribe(t, st, ten, nil)
	for _, k := range []string{"x", "y", "z"} { // this version: #at is version 3's time
		upsert(t, st, ten, k, k, time.Hour)
	}
	expectVersions(t, sub, 1, 3)
	p := st.pump(ten)
	// The check of the new pump (see verify) is done: made later, it would find the older
	// writer's versions below and have the pump read them before they are trimmed.
	waitPump(t, p, "the new pump was not checked", func(*pump) bool { return reads.checks.Load() > 0 })
	waitPump(t, p, "the pump stays busy", func(p *pump) bool { return !p.stale && !p.busy })
	at3, err := f.client.HGet(ctx, keys[keyState], metaAt).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The backend's registration lapsed (see the package doc, "Notices"): the older writer's
	// writes publish nothing, and the pump hears of them only when it reads.
	if err := f.client.HDel(ctx, keys[keyState], metaWatcher, metaWatched, metaShared).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range n { // versions 4 to n+3, of which the stream keeps about the last 10
		f.shift(time.Millisecond)
		ops := []writeOp{{code: opUpsert, key: fmt.Sprint("old", i), value: []byte("v"), ttl: time.Hour}}
		if _, err := runWrite(ctx, f.b.scripts, keys, "", st.limits, ops); err != nil {
			t.Fatal(err)
		}
	}
	// An older writer writes no #at: the meta keeps version 3's.
	if err := f.client.HSet(ctx, keys[keyState], metaAt, at3).Err(); err != nil {
		t.Fatal(err)
	}
	f.b.nudgeAll() // as the poll does, which finds the tenant at its last version
	if ev := next(t, sub); ev.Kind != backend.EventOverflow {
		t.Fatalf("after the gap: %s version %d, want an overflow (versions 4 on were trimmed)", ev.Kind, ev.Version)
	}
	last := uint64(n + 3)
	waitPump(t, p, "the pump did not jump the gap", func(p *pump) bool { return p.head == last && !p.stale && !p.busy })
	for {
		if ev := next(t, sub); ev.Version == last {
			break
		}
	}
	// Any read of the pump at that head: a notice that came during a read, an expiry's tick, a
	// new pub/sub connection's check.
	f.b.nudgeAll()
	waitPump(t, p, "the pump stays busy", func(p *pump) bool { return !p.stale && !p.busy })
	e := upsert(t, st, ten, "k", "v", time.Hour)
	if ev := next(t, sub); ev.Kind != backend.EventUpsert || ev.Version != e.Version {
		t.Fatalf("after the read at the jumped head: %s version %d, want the upsert of version %d", ev.Kind, ev.Version, e.Version)
	}
	if n := p.forks.Load(); n != 0 {
		t.Fatalf("the pump took the tenant for going back %d times", n)
	}
}

// A rollback behind the versions this backend's writes returned, while those writes were of
// more than one epoch (here: writes of the tenant's first epoch and of the one a write made
// after its state was lost, all returned during a read of the pump), is seen by those writes
// all the same. The pump compared the tenant's
// last version with them only while they were of one epoch: it missed that versions 2 to 16
// were gone, and the highest of them (16), with MaxEvents 10, made version 2, issued again,
// look trimmed: its readers read it from Redis, found it "trimmed" again, and so on without
// end (as 18db740 fixed for a write of an older epoch).
func TestRollbackBehindMixedWritesMiniredis(t *testing.T) {
	f := newMini(t, WithPollInterval(time.Hour))
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{MaxEvents: 10}), "mixed"
	var read1, read2 atomic.Bool
	hold1 := holdFirst(func(c redis.Cmder) bool { return read1.Load() && c.Name() == "xrange" }) // the pump's read
	hold2 := holdFirst(func(c redis.Cmder) bool { return read2.Load() && c.Name() == "xrange" })
	f.client.AddHook(hold1)
	f.client.AddHook(hold2)
	defer func() { // a failed test releases what it holds, or the backend's Close waits for it
		for _, h := range []*cmdHook{hold1, hold2} {
			select {
			case <-h.release:
			default:
				close(h.release)
			}
		}
	}()
	sub := subscribe(t, st, ten, nil)
	p := st.pump(ten)
	upsert(t, st, ten, "k", "v", time.Hour)
	expectVersions(t, sub, 1, 1)
	waitPump(t, p, "the pump stays busy", func(p *pump) bool { return !p.stale && !p.busy })

	read1.Store(true)
	f.b.nudgeAll() // a read of the pump, which waits before it is sent
	<-hold1.held
	upsert(t, st, ten, "k", "v", time.Hour) // version 2 of the first epoch
	// The tenant's state is lost.
	if err := f.client.Del(ctx, st.keys(ten)...).Err(); err != nil {
		t.Fatal(err)
	}
	e := upsert(t, st, ten, "k", "v", time.Hour) // version 1 of a new epoch: writes of two epochs
	close(hold1.release)
	if ev := next(t, sub); ev.Kind != backend.EventOverflow {
		t.Fatalf("after the loss: %+v, want an overflow", ev)
	}
	if ev := next(t, sub); ev.Epoch != e.Epoch || ev.Version != 1 {
		t.Fatalf("after the overflow: %+v, want version 1 of %s", ev, e.Epoch)
	}
	waitPump(t, p, "the pump stays busy", func(p *pump) bool { return !p.stale && !p.busy && p.epoch == e.Epoch })

	replica := saveState(t, f, st, ten) // a replica that sees only version 1
	read2.Store(true)
	f.b.nudgeAll()
	<-hold2.held
	for range 15 { // versions 2 to 16 return while the pump's read is out: it does not deliver them
		upsert(t, st, ten, "k", "lost", time.Hour)
	}
	replica.restore(t) // a failover to it
	close(hold2.release)
	waitPump(t, p, "the pump stays busy", func(p *pump) bool { return !p.stale && !p.busy })
	reads := countCmds(func(c redis.Cmder) bool { return scriptOf(c.Args()) == readScript }) // the readers' own
	f.client.AddHook(reads)
	upsert(t, st, ten, "k", "again", time.Hour) // version 2 again
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after the rollback: %v after %d reads of the reader, want version 2 issued again", err, reads.n.Load())
		}
		if ev.Kind == backend.EventOverflow {
			continue // the history went back: the reader may read again from the start
		}
		if ev.Version == 2 {
			if string(ev.Value) != "again" {
				t.Fatalf("version 2 %q, want \"again\"", ev.Value)
			}
			break
		}
	}
}

// tenantState is the content of a tenant's keys at one time, as a replica has it.
type tenantState struct {
	f      fixture
	keys   []string
	state  map[string]string
	exp    []redis.Z
	events []redis.XMessage
}

// saveState returns the content of the keys of tenant of st now.
func saveState(t *testing.T, f fixture, st *store, ten string) *tenantState {
	t.Helper()
	ctx := context.Background()
	s := &tenantState{f: f, keys: st.keys(ten)}
	var err error
	if s.state, err = f.client.HGetAll(ctx, s.keys[keyState]).Result(); err != nil {
		t.Fatal(err)
	}
	if s.exp, err = f.client.ZRangeWithScores(ctx, s.keys[keyExp], 0, -1).Result(); err != nil {
		t.Fatal(err)
	}
	if s.events, err = f.client.XRange(ctx, s.keys[keyEvents], "-", "+").Result(); err != nil {
		t.Fatal(err)
	}
	return s
}

// restore replaces the tenant's keys with the content s saved, as a failover to a replica that
// had it does.
func (s *tenantState) restore(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	pipe := s.f.client.TxPipeline()
	pipe.Del(ctx, s.keys...)
	state := make([]any, 0, 2*len(s.state))
	for k, v := range s.state {
		state = append(state, k, v)
	}
	pipe.HSet(ctx, s.keys[keyState], state...)
	if len(s.exp) > 0 {
		pipe.ZAdd(ctx, s.keys[keyExp], s.exp...)
	}
	for _, m := range s.events {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.keys[keyEvents], ID: m.ID, Values: m.Values})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// After the pump found the tenant gone back, or made anew after writes of this backend, and no
// write of this backend was out meanwhile, new readers open without a read again once the pump
// is live: the versions those writes returned are behind the head the pump read, or gone.
// They read where to start for the rest of the pump's life before (one call of open.lua per
// Subscribe, as if the tenant had no pump in the backend), and still start after every write
// of the backend that returned before.
func TestOpenLiveAfterRollbackMiniredis(t *testing.T) {
	f := newMini(t, WithPollInterval(time.Hour))
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "again"
	sub := subscribe(t, st, ten, nil)
	for range 3 {
		upsert(t, st, ten, "k", "v", time.Hour)
	}
	expectVersions(t, sub, 1, 3)
	opensLive := func(when string) {
		t.Helper()
		opens := countCmds(isOpen)
		f.client.AddHook(opens)
		for i := range 10 {
			e := upsert(t, st, ten, "k", "before", time.Hour)
			fresh, err := st.Subscribe(ctx, ten, backend.SubscribeRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if start := fresh.Start(); start.Epoch != e.Epoch || start.Seq < e.Version {
				t.Fatalf("%s, open %d: starts at %v, before the upsert of version %d that returned", when, i, start, e.Version)
			}
			e2 := upsert(t, st, ten, "k", "after", time.Hour)
			if ev := next(t, fresh); ev.Version != e2.Version || string(ev.Value) != "after" {
				t.Fatalf("%s, open %d: first event %s version %d %q, want the later upsert's, version %d", when, i, ev.Kind, ev.Version, ev.Value, e2.Version)
			}
			fresh.Close()
		}
		if n := opens.n.Load(); n != 0 {
			t.Errorf("%s: %d calls of open.lua for 10 subscriptions, want 0", when, n)
		}
	}

	rollBack(t, f, st, ten)
	f.b.nudgeAll()
	if ev := next(t, sub); ev.Kind != backend.EventOverflow {
		t.Fatalf("after the rollback: %+v, want an overflow", ev)
	}
	livePump(t, f.b, st, ten)
	opensLive("after the rollback")

	if err := f.client.Del(ctx, st.keys(ten)...).Err(); err != nil { // the tenant's state is lost
		t.Fatal(err)
	}
	e := upsert(t, st, ten, "k", "new", time.Hour) // writes of this backend in two epochs
	p := st.pump(ten)
	waitPump(t, p, "the pump did not see the new epoch", func(p *pump) bool { return p.epoch == e.Epoch && !p.stale && !p.busy })
	livePump(t, f.b, st, ten)
	// The pump's check after the new epoch registers the backend's readers there (a call of
	// open.lua): not a Subscribe's.
	for deadline := time.Now().Add(eventWait); ; time.Sleep(time.Millisecond) {
		if w, _ := f.client.HGet(ctx, st.keys(ten)[keyState], metaWatcher).Result(); w == f.b.watcherID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backend's readers are not registered in the new epoch")
		}
	}
	opensLive("after the new epoch")
}

// A write sent before the pump found the tenant went back, whose reply comes after, may be of
// the history that is gone (the old master ran it, and replied, before it died): its version
// names no point of the new one. Since the pump forgets the versions of the writes it had once
// it finds the tenant went back (new readers then open without a read, see
// TestOpenLiveAfterRollbackMiniredis), such a write is not taken for one of the new history:
// new readers read where to start, and its events are not appended to the log (the pump reads).
func TestRollbackLateWriteMiniredis(t *testing.T) {
	f := newMini(t, WithPollInterval(time.Hour))
	hold, st, ten, sub, p, late := lateAcrossRollback(t, f)
	ev := next(t, sub)
	if ev.Version == 4 { // the pump read version 4 before the rollback (its first check, say)
		ev = next(t, sub)
	}
	if ev.Kind != backend.EventOverflow {
		t.Fatalf("after the rollback: %+v, want an overflow", ev)
	}
	expectVersions(t, sub, 1, 1)
	waitPump(t, p, "the pump did not see that the tenant went back", func(p *pump) bool { return p.forks.Load() == 1 && !p.stale && !p.busy })
	close(hold.release)
	<-late
	f.shift(time.Millisecond) // the new master writes later than the old one did
	fresh := subscribe(t, st, ten, nil)
	if start := fresh.Start(); start.Seq != 1 {
		t.Fatalf("a new reader starts at %v, want version 1, the tenant's last", start)
	}
	for _, v := range []string{"a", "b", "c"} {
		upsert(t, st, ten, "k", v, time.Hour)
	}
	for _, s := range []backend.Subscription{sub, fresh} {
		for i, v := range []string{"a", "b", "c"} {
			ev := next(t, s)
			if ev.Kind == backend.EventOverflow {
				ev = next(t, s) // a reader may re-read from the start of the new history
				for ev.Version == 1 {
					ev = next(t, s)
				}
			}
			if ev.Version != uint64(i+2) || string(ev.Value) != v {
				t.Fatalf("reader from %v: %s version %d %q %q, want version %d %q", s.Start(), ev.Kind, ev.Version, ev.Key, ev.Value, i+2, v)
			}
		}
	}
}

// A junk entry at the pump's head (another program's, skipped by an overflow past it) has no
// time and proves nothing: the next read that holds it, with the next version of the same
// history, is not taken for another history. It was, when a read of the pump at that head
// raced the next write (TestFeedJunkMiniredis failed about once in 200 runs with an overflow
// back to the first version).
func TestOtherHistoryJunkAtHead(t *testing.T) {
	const epoch, at = "01b8e0949888317ca193", 1893553445000
	junk := backend.Event{Version: 2} // kind 0, no epoch, no time: as parseEntry makes it
	next := backend.Event{Kind: backend.EventUpsert, Epoch: epoch, Version: 3, Key: "k", At: at}
	r := readResult{epoch: epoch, head: 3, at: at, events: []backend.Event{junk, next}}
	if otherHistory(r, 2, at) {
		t.Error("a read with junk at the pump's head, then the next version, taken for another history")
	}
	// The meta's time still tells a history that went back when the head is junk.
	r = readResult{epoch: epoch, head: 2, at: at + 1, events: []backend.Event{junk}}
	if !otherHistory(r, 2, at) {
		t.Error("a head made at another time by the meta, with junk at it, not taken for another history")
	}
}

// A write in flight while the pump finds the tenant went back (in a failover with writes going
// on, one nearly always is) makes new readers read where to start until the pump has read the
// tenant since that write returned: then its version is behind the head read, or gone with
// the history that was lost. They read for the rest of the pump's life before, as when every
// rollback did (see TestOpenLiveAfterRollbackMiniredis): the late write left the pump's writes
// marked mixed until it found the tenant going back again.
func TestOpenLiveAfterLateWriteMiniredis(t *testing.T) {
	f := newMini(t, WithPollInterval(time.Hour))
	ctx := context.Background()
	hold, st, ten, _, p, late := lateAcrossRollback(t, f)
	waitPump(t, p, "the pump did not see that the tenant went back", func(p *pump) bool { return p.forks.Load() == 1 && !p.stale && !p.busy })
	close(hold.release)
	<-late
	// The late write makes the pump read; once it has, its version no longer matters.
	waitPump(t, p, "the pump did not read after the late write", func(p *pump) bool { return !p.stale && !p.busy })
	livePump(t, f.b, st, ten)
	f.shift(time.Millisecond) // the new master writes later than the old one did
	opens := countCmds(isOpen)
	f.client.AddHook(opens)
	for i := range 10 {
		e := upsert(t, st, ten, "k", "before", time.Hour)
		fresh, err := st.Subscribe(ctx, ten, backend.SubscribeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if start := fresh.Start(); start.Epoch != e.Epoch || start.Seq < e.Version {
			t.Fatalf("open %d: starts at %v, before the upsert of version %d that returned", i, start, e.Version)
		}
		e2 := upsert(t, st, ten, "k", "after", time.Hour)
		if ev := next(t, fresh); ev.Version != e2.Version || string(ev.Value) != "after" {
			t.Fatalf("open %d: first event %s version %d %q, want the later upsert's, version %d", i, ev.Kind, ev.Version, ev.Value, e2.Version)
		}
		fresh.Close()
	}
	if n := opens.n.Load(); n != 0 {
		t.Errorf("%d calls of open.lua for 10 subscriptions, want 0", n)
	}
}

// A write sent before a pump of the store found the tenant went back, whose reply comes only
// after that pump stopped (its readers closed) and a new one was made, may be of the history
// that is gone as well: the new pump, made by a read of the new history, did not take it for
// one of it. It once held the write's event ahead of its head, and appended it to the log as
// the new history's version 4 once this backend's writes made versions 2 and 3: a reader got
// an event that Redis never had in its history.
func TestRollbackLateWriteNewPumpMiniredis(t *testing.T) {
	f := newMini(t, WithPollInterval(time.Hour))
	hold, st, ten, sub, p, late := lateAcrossRollback(t, f)
	waitPump(t, p, "the pump did not see that the tenant went back", func(p *pump) bool { return p.forks.Load() == 1 && !p.stale && !p.busy })
	sub.Close() // the pump stops
	if st.pump(ten) != nil {
		t.Fatal("the pump outlived its last reader")
	}
	fresh := subscribe(t, st, ten, nil) // a new pump, at version 1
	if start := fresh.Start(); start.Seq != 1 {
		t.Fatalf("a new reader starts at %v, want version 1, the tenant's last", start)
	}
	close(hold.release)
	<-late
	f.shift(time.Millisecond) // the new master writes later than the old one did
	for _, v := range []string{"a", "b", "c"} {
		upsert(t, st, ten, "k", v, time.Hour)
	}
	for i, v := range []string{"a", "b", "c"} {
		ev := next(t, fresh)
		if ev.Version != uint64(i+2) || string(ev.Key) != "k" || string(ev.Value) != v {
			t.Fatalf("%s version %d %q %q, want version %d \"k\" %q", ev.Kind, ev.Version, ev.Key, ev.Value, i+2, v)
		}
	}
}

// lateAcrossRollback starts the tests of a write whose reply comes after its tenant went back:
// the tenant "late" of a store of f has versions 1 to 3, read by sub through the live pump p;
// an upsert of version 4 is sent and its reply held (late is closed once it returns, after
// hold.release is closed); then the tenant goes back to version 1 (rollBack) and the pumps
// are nudged.
func lateAcrossRollback(t *testing.T, f fixture) (hold *heldWrite, st *store, ten string, sub backend.Subscription, p *pump, late <-chan struct{}) {
	hold = holdWrite(f)
	st, ten = f.open(t, backend.Limits{}), "late"
	sub = subscribe(t, st, ten, nil)
	for range 3 {
		upsert(t, st, ten, "k", "v", time.Hour)
	}
	expectVersions(t, sub, 1, 3)
	p = livePump(t, f.b, st, ten)
	late = hold.lateUpsert(t, st, ten, "late") // version 4 of the old history; its reply waits
	rollBack(t, f, st, ten)
	f.b.nudgeAll()
	return hold, st, ten, sub, p, late
}
