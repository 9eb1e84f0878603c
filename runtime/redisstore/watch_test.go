package redisstore

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// The tests of the registrations of readers (see the package doc, "Notices"). Their backends
// poll once an hour: every event comes by a notice, by the reply of a backend's own write, or
// by a read one of them asks for.

func TestOwnWritesNotifyNoneMini(t *testing.T)  { testOwnWritesNotifyNone(t, newMini) }
func TestOwnWritesNotifyNoneRedis(t *testing.T) { testOwnWritesNotifyNone(t, newReal) }

// testOwnWritesNotifyNone checks that the writes of a backend to a tenant that only its own
// readers watch publish no notice, and that its readers get their events all the same, and on
// a real server the expiry they schedule; and that the writes of another backend publish theirs.
func testOwnWritesNotifyNone(t *testing.T, mk func(testing.TB, ...Option) fixture) {
	f := newNoticeFixture(t, mk)
	notices := watchNotices(t, f.client.Subscribe(context.Background(), channel(f.st.keys("t"))))
	e := upsert(t, f.st, "t", "own", "1", time.Hour)
	f.expect(t, e.Version, "own", []byte("1"))
	f.publish(t, "sentinel") // the notices come in order: a notice of the write comes first
	if m := nextMessage(t, notices); m.Payload != "sentinel" {
		t.Fatalf("notice %q of the backend's own write, want none", m.Payload)
	}
	v := f.upsert(t, "other", []byte("2"))
	if n, payload := nextNotice(t, notices, "another backend's write"); n.head != v {
		t.Fatalf("notice %q, want the other backend's write of version %d", payload, v)
	}
	f.expect(t, v, "other", []byte("2"))
	if f.shift != nil {
		return // miniredis's clock moves only by hand: the pump's timer would tick too early
	}
	short := upsert(t, f.st, "t", "short", "3", 100*time.Millisecond)
	f.expect(t, short.Version, "short", []byte("3"))
	if ev := next(t, f.sub); ev.Kind != backend.EventExpire || ev.Key != "short" {
		t.Fatalf("event %v %q, want the expiry of short (its write told the pump when)", ev.Kind, ev.Key)
	}
}

func TestTwoWatchersMini(t *testing.T)    { testTwoWatchers(t, newMini) }
func TestTwoWatchersRedis(t *testing.T)   { testTwoWatchers(t, newReal) }
func TestTwoWatchersCluster(t *testing.T) { testTwoWatchers(t, newCluster) }

// testTwoWatchers checks that when the readers of two backends watch a tenant, the writes of
// each publish their notices for the other's, both ways.
func testTwoWatchers(t *testing.T, mk func(testing.TB, ...Option) fixture) {
	f := newNoticeFixture(t, mk)
	sub2 := subscribe(t, f.other, "t", nil)
	for i, w := range []*store{f.st, f.other, f.st} {
		value := []byte{byte('a' + i)}
		e, err := w.Upsert(context.Background(), "t", backend.UpsertRequest{Key: "k", Value: value, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		f.expect(t, e.Version, "k", value)
		if ev := next(t, sub2); ev.Version != e.Version || !bytes.Equal(ev.Value, value) {
			t.Fatalf("write %d: the second backend's reader got version %d %q, want %d %q", i, ev.Version, ev.Value, e.Version, value)
		}
	}
}

// TestRegistrationLapsesMiniredis checks that a registration whose time is up makes the writes
// of other backends publish nothing, and that the backend's next check, which renews it, gets
// the events they made meanwhile.
func TestRegistrationLapsesMiniredis(t *testing.T) {
	f := newNoticeFixture(t, newMini)
	notices := watchNotices(t, f.client.Subscribe(context.Background(), channel(f.st.keys("t"))))
	e := upsert(t, f.st, "t", "kept", "0", 100*f.b.watchFor()) // keeps the tenant's keys beyond the shift
	f.expect(t, e.Version, "kept", []byte("0"))
	f.shift(f.b.watchFor() + time.Second)
	v := f.upsert(t, "late", []byte("1"))
	f.publish(t, "sentinel")
	if m := nextMessage(t, notices); m.Payload != "sentinel" {
		t.Fatalf("notice %q of a write to a tenant whose registration lapsed, want none", m.Payload)
	}
	if !f.b.checkPumps([]*pump{f.pump()}) {
		t.Fatal("the check got no answer")
	}
	f.expect(t, v, "late", []byte("1"))
	w, err := f.client.HMGet(context.Background(), f.st.keys("t")[keyState], metaWatcher).Result()
	if err != nil || w[0] != f.b.watcherID {
		t.Fatalf("the tenant's watcher after the check: %v, %v; want %q", w, err, f.b.watcherID)
	}
	v2 := f.upsert(t, "renewed", []byte("2"))
	if n, payload := nextNotice(t, notices, "a write after the renewal"); n.head != v2 {
		t.Fatalf("notice %q, want the write of version %d", payload, v2)
	}
	f.expect(t, v2, "renewed", []byte("2"))
}

// nextMessage returns the next message of ms; it fails the test if none comes in eventWait.
func nextMessage(t *testing.T, ms <-chan *redis.Message) *redis.Message {
	t.Helper()
	select {
	case m := <-ms:
		return m
	case <-time.After(eventWait):
		t.Fatal("no message on the notice channel")
		return nil
	}
}

// TestRenews checks when a check renews the backend's registration in a tenant: where it has
// less than half of its time left, as the tenant's watcher or as one of the others, or none.
func TestRenews(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"})
	defer c.Close()
	b := New(c)
	defer b.Close()
	const now = 1_000_000
	half := now + b.watchFor().Milliseconds()/2
	ms := func(n int64) string { return strconv.FormatInt(n, 10) }
	for _, c := range []struct {
		w    []string
		want bool
	}{
		{[]string{"", "", ""}, true},
		{[]string{b.watcherID, ms(half + 1), ""}, false},
		{[]string{b.watcherID, ms(half - 1), ""}, true},
		{[]string{"other", ms(now - 1), ""}, true},            // the other's time is up: take its place
		{[]string{"other", ms(now + 1), ""}, true},            // another watches: share
		{[]string{"other", ms(now + 1), ms(half + 1)}, false}, // shared, with time left
		{[]string{"other", ms(now + 1), ms(half - 1)}, true},
		{[]string{"other", "junk", "junk"}, false}, // as open.lua reads junk: time left
	} {
		if got := b.renews(c.w, now); got != c.want {
			t.Errorf("renews(%v) = %v, want %v", c.w, got, c.want)
		}
	}
}

// TestWritesAheadMiniredis checks that the events of a backend's write that returns before
// those of an earlier write of the backend wait for them, and go to the readers in order,
// without a read; and that a write whose script made versions it cannot tell (an expiry)
// makes the pump read them.
func TestWritesAheadMiniredis(t *testing.T) {
	f := newNoticeFixture(t, newMini)
	f.quiesce(t)
	p := f.pump()
	p.mu.Lock()
	epoch, head := p.epoch, p.head
	p.mu.Unlock()
	write := func(v uint64, key string) {
		ops := []writeOp{{code: opUpsert, key: key, value: []byte(key), ttl: time.Hour}}
		res := []writeResult{{ok: true, version: v, epoch: epoch, createdAt: 1, updatedAt: 1, expiresAt: 2}}
		p.noteWrites(epoch, v, ops, res, writeTail{first: v, last: v, dueIn: -1}, p.st.forks.Load())
	}
	reads := f.reads.n.Load()
	write(head+2, "second")
	p.mu.Lock()
	if p.head != head || p.stale || len(p.ahead) != 1 {
		t.Fatalf("after a write ahead: head %d (was %d), stale %v, %d events ahead; want it kept, no read", p.head, head, p.stale, len(p.ahead))
	}
	p.mu.Unlock()
	write(head+1, "first")
	f.expect(t, head+1, "first", []byte("first"))
	f.expect(t, head+2, "second", []byte("second"))
	if n := f.reads.n.Load(); n != reads {
		t.Fatalf("%d reads, want none", n-reads)
	}

	// An upsert whose script expires another entry first: its version is not the first the
	// call made.
	ctx := context.Background()
	if err := f.client.HSet(ctx, f.st.keys("t")[keyState], metaSeq, head+2).Err(); err != nil {
		t.Fatal(err) // the versions noted above, as if written
	}
	short := upsert(t, f.st, "t", "short", "s", 10*time.Millisecond)
	f.expect(t, short.Version, "short", []byte("s"))
	f.shift(time.Second)
	e := upsert(t, f.st, "t", "after", "a", time.Hour)
	if ev := next(t, f.sub); ev.Kind != backend.EventExpire || ev.Key != "short" || ev.Version != e.Version-1 {
		t.Fatalf("event %v %q %d, want the expiry of short at %d", ev.Kind, ev.Key, ev.Version, e.Version-1)
	}
	f.expect(t, e.Version, "after", []byte("a"))
	if f.reads.n.Load() == reads {
		t.Fatal("no read, want one for the expiry")
	}
}

// failApplied is a client hook that makes the calls of write.lua fail once fail is set, after
// the server has applied them: a reply lost on its way back.
type failApplied struct{ fail atomic.Bool }

func (h *failApplied) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *failApplied) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil && h.fail.Load() && scriptOf(cmd.Args()) == writeScript {
			err = errors.New("the reply was lost")
			cmd.SetErr(err)
		}
		return err
	}
}

func (h *failApplied) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if cmd.Err() == nil && h.fail.Load() && scriptOf(cmd.Args()) == writeScript {
				cmd.SetErr(errors.New("the reply was lost"))
			}
		}
		return err
	}
}

func TestLostWriteReadMini(t *testing.T)  { testLostWriteRead(t, newMini) }
func TestLostWriteReadRedis(t *testing.T) { testLostWriteRead(t, newReal) }

// testLostWriteRead checks that a write of the backend that fails after the server applied it
// (its reply lost) reaches the backend's readers all the same: no notice tells them of it, so
// the pump reads.
func testLostWriteRead(t *testing.T, mk func(testing.TB, ...Option) fixture) {
	f := newNoticeFixture(t, mk)
	h := &failApplied{}
	f.client.AddHook(h)
	f.quiesce(t)
	h.fail.Store(true)
	if _, err := f.st.Upsert(context.Background(), "t", backend.UpsertRequest{Key: "k", Value: []byte("v"), TTL: time.Hour}); err == nil {
		t.Fatal("the upsert whose reply was lost succeeded")
	}
	h.fail.Store(false)
	if ev := next(t, f.sub); ev.Kind != backend.EventUpsert || ev.Key != "k" || string(ev.Value) != "v" {
		t.Fatalf("event %v %q %q, want the upsert of k=v that was applied", ev.Kind, ev.Key, ev.Value)
	}
}

// TestOwnTickNotifiesNoneMiniredis checks that the tick of a backend's pump publishes no
// notice when only the backend's own readers watch the tenant, which get the expiry from the
// pump's read, and publishes one when another backend watches too.
func TestOwnTickNotifiesNoneMiniredis(t *testing.T) {
	f := newNoticeFixture(t, newMini)
	ctx := context.Background()
	keys := f.st.keys("t")
	notices := watchNotices(t, f.client.Subscribe(ctx, channel(keys)))
	tick := func(key string) uint64 {
		t.Helper()
		e := upsert(t, f.st, "t", key, "x", 10*time.Millisecond)
		f.expect(t, e.Version, key, []byte("x"))
		f.shift(time.Second)
		if _, err := runTick(ctx, f.b.scripts, keys, f.st.limits, f.b.watcherID); err != nil {
			t.Fatal(err)
		}
		f.pump().nudge() // the pump reads after its tick
		if ev := next(t, f.sub); ev.Kind != backend.EventExpire || ev.Key != key {
			t.Fatalf("event %v %q, want the expiry of %s", ev.Kind, ev.Key, key)
		}
		return e.Version + 1
	}
	tick("a")
	f.publish(t, "sentinel")
	if m := nextMessage(t, notices); m.Payload != "sentinel" {
		t.Fatalf("notice %q of the backend's own tick, want none", m.Payload)
	}
	register(t, f.b.scripts, keys, "another process", time.Hour)
	v := tick("b")
	for _, want := range []uint64{v - 1, v} { // the upsert's notice, then the tick's
		if n, payload := nextNotice(t, notices, "a tenant another backend watches"); n.head != want {
			t.Fatalf("notice %q, want one of version %d", payload, want)
		}
	}
}

// TestWriteAheadBeyondMaxEventsMiniredis checks that the events of a batch that returns ahead
// of an earlier one are not kept when they are more than MaxEvents (the stream trimmed the
// first of them as the batch added them, so no log may take them): the pump reads instead.
func TestWriteAheadBeyondMaxEventsMiniredis(t *testing.T) {
	f := newMini(t, WithPollInterval(time.Hour))
	rc := &readCounter{}
	f.client.AddHook(rc)
	st := f.open(t, backend.Limits{MaxEvents: 2})
	subscribe(t, st, "t", nil)
	f.b.mu.Lock()
	p := f.b.pumps[tenantKey{"test", "t"}]
	f.b.mu.Unlock()
	waitPump(t, p, "the pump stays busy", func(p *pump) bool { return !p.stale && !p.busy })
	p.mu.Lock()
	epoch, head := p.epoch, p.head
	p.mu.Unlock()
	var ops []writeOp
	var res []writeResult
	for v := head + 2; v <= head+4; v++ {
		ops = append(ops, writeOp{code: opUpsert, key: "k", value: []byte("v"), ttl: time.Hour})
		res = append(res, writeResult{ok: true, version: v, epoch: epoch, createdAt: 1, updatedAt: 1, expiresAt: 2})
	}
	reads := rc.n.Load()
	p.noteWrites(epoch, head+4, ops, res, writeTail{first: head + 2, last: head + 4, dueIn: -1}, p.st.forks.Load())
	p.mu.Lock()
	ahead := len(p.ahead)
	p.mu.Unlock()
	if ahead != 0 {
		t.Fatalf("%d events of a batch of 3 with MaxEvents 2 kept ahead, want none", ahead)
	}
	for deadline := time.Now().Add(eventWait); rc.n.Load() == reads; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no read, want one for the batch no log may take")
		}
	}
}

// TestFailedWriteExpiresMiniredis checks that a batch whose writes all fail but whose script
// expired due entries first makes the backend's pump read those expiries: no notice of its
// own writes comes, and the pump's timer is far off.
func TestFailedWriteExpiresMiniredis(t *testing.T) {
	f := newNoticeFixture(t, newMini)
	kept := upsert(t, f.st, "t", "kept", "k", 3*time.Hour)
	f.expect(t, kept.Version, "kept", []byte("k"))
	short := upsert(t, f.st, "t", "short", "s", time.Hour)
	f.expect(t, short.Version, "short", []byte("s"))
	f.shift(2 * time.Hour) // short is due by the server's clock; the pump's timer waits an hour
	_, err := f.st.Upsert(context.Background(), "t", backend.UpsertRequest{Key: "kept", Value: []byte("x"), TTL: time.Hour,
		Cond: backend.Condition{Kind: backend.CondIfNew}})
	if !errors.As(err, new(*backend.ConflictError)) {
		t.Fatalf("upsert if new of a live key: %v, want a conflict", err)
	}
	if ev := next(t, f.sub); ev.Kind != backend.EventExpire || ev.Key != "short" || ev.Version != short.Version+1 {
		t.Fatalf("event %v %q %d, want the expiry of short at %d", ev.Kind, ev.Key, ev.Version, short.Version+1)
	}
}
