package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// readCounter is a go-redis hook that counts the reads of a tenant's events: the pumps'
// (a transaction with an XRANGE) and read.lua's (Subscribe's and the catching-up readers').
// hold, when set, runs before each pump read is sent.
type readCounter struct {
	n      atomic.Int64
	checks atomic.Int64 // the pipelines of the pumps' checks (checkPumps)
	hold   atomic.Pointer[func()]
}

func (c *readCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *readCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		a := cmd.Args()
		if scriptOf(a) == readScript {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *readCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if cmd.Name() == "hmget" && len(cmds) > 1 && cmds[0].Name() == "time" {
				defer c.checks.Add(1)
			}
			if cmd.Name() == "xrange" {
				c.n.Add(1)
				if h := c.hold.Load(); h != nil {
					(*h)()
				}
				break
			}
		}
		return next(ctx, cmds)
	}
}

// noticeFixture is a backend whose reads are counted, without polls (which may read), and a
// subscription of the tenant "t" of its store whose notice channel is subscribed. upsert
// writes through another backend on the same keys, as another process would: the events of
// the backend's own writes reach its readers without a notice (see pump.noteWrites).
type noticeFixture struct {
	fixture
	st    *store
	other *store
	sub   backend.Subscription
	reads *readCounter
}

func newNoticeFixture(t *testing.T, mk func(testing.TB, ...Option) fixture) noticeFixture {
	f := mk(t, WithPollInterval(time.Hour))
	rc := &readCounter{}
	f.client.AddHook(rc)
	st := f.open(t, backend.Limits{})
	sub := subscribe(t, st, "t", nil)
	// Wait for the check of the channel's subscription (verify), which reads if a write
	// came before it.
	deadline := time.Now().Add(eventWait)
	for rc.checks.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the notice channel's subscription is not checked")
		}
		time.Sleep(time.Millisecond)
	}
	other := New(f.client, WithKeyPrefix(f.b.prefix), WithPollInterval(time.Hour))
	t.Cleanup(func() { other.Close() })
	ost, err := other.Open("test", backend.Limits{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	return noticeFixture{fixture: f, st: st, other: ost.(*store), sub: sub, reads: rc}
}

// upsert writes key=value to the tenant from the other backend and returns the write's
// version.
func (f noticeFixture) upsert(t *testing.T, key string, value []byte) uint64 {
	t.Helper()
	e, err := f.other.Upsert(context.Background(), "t", backend.UpsertRequest{Key: key, Value: value, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return e.Version
}

// expect reads the next event and checks that it is the upsert of key=value at version v.
func (f noticeFixture) expect(t *testing.T, v uint64, key string, value []byte) {
	t.Helper()
	ev := next(t, f.sub)
	if ev.Kind != backend.EventUpsert || ev.Version != v || ev.Key != key || !bytes.Equal(ev.Value, value) {
		t.Fatalf("event %v %d %q %q, want the upsert of %q=%q at %d", ev.Kind, ev.Version, ev.Key, ev.Value, key, value, v)
	}
}

// publish publishes payload on the tenant's notice channel, as anyone may.
func (f noticeFixture) publish(t *testing.T, payload string) {
	t.Helper()
	if err := f.client.Publish(context.Background(), channel(f.st.keys("t")), payload).Err(); err != nil {
		t.Fatal(err)
	}
}

// waitReads waits until more than n reads were made.
func (f noticeFixture) waitReads(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for f.reads.n.Load() <= n {
		if time.Now().After(deadline) {
			t.Fatalf("%d reads, want more", f.reads.n.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// pump returns the tenant's pump.
func (f noticeFixture) pump() *pump {
	f.b.mu.Lock()
	defer f.b.mu.Unlock()
	return f.b.pumps[tenantKey{"test", "t"}]
}

// quiesce waits until the pump has no read to do nor in flight.
func (f noticeFixture) quiesce(t *testing.T) {
	t.Helper()
	waitPump(t, f.pump(), "the pump stays busy", func(p *pump) bool { return !p.stale && !p.busy })
}

// waitPump waits until cond, called with p.mu held, holds, and fails with msg if it does not
// within eventWait.
func waitPump(t *testing.T, p *pump, msg string, cond func(p *pump) bool) {
	t.Helper()
	for deadline := time.Now().Add(eventWait); ; time.Sleep(time.Millisecond) {
		p.mu.Lock()
		ok := cond(p)
		p.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
	}
}

func TestNoticeDeliversMini(t *testing.T)  { testNoticeDelivers(t, newMini) }
func TestNoticeDeliversRedis(t *testing.T) { testNoticeDelivers(t, newReal) }

// testNoticeDelivers checks that the events of writes reach a reader from their notices,
// without a read of Redis, and that each kind of notice the pump cannot append from (junk, a
// header without events, a gap, another epoch, events beyond the size cap, a notice during a
// read) makes it read instead, with the reader getting exactly the stream's events.
func testNoticeDelivers(t *testing.T, mk func(testing.TB, ...Option) fixture) {
	f := newNoticeFixture(t, mk)
	reads := f.reads.n.Load()
	var v uint64
	for i := range 20 {
		value := fmt.Appendf(nil, "value %d", i)
		v = f.upsert(t, fmt.Sprint("k", i%3), value)
		f.expect(t, v, fmt.Sprint("k", i%3), value)
	}
	if n := f.reads.n.Load() - reads; n != 0 {
		t.Fatalf("%d reads for 20 events from their notices, want 0", n)
	}
	epoch := f.sub.(*subscription).pos.Epoch
	other := strings.Repeat("0", len(epoch)-1) + "1"
	forged := func(epoch string, head uint64) string {
		return fmt.Sprintf("%s %d -1 1 u 1:k 1 %d 6:forged", epoch, head, time.Now().Add(time.Hour).UnixMilli())
	}
	for _, c := range []struct {
		name    string
		payload func(head uint64) string
	}{
		{"junk", func(uint64) string { return "junk \x00 on the channel" }},
		{"no events", func(v uint64) string { return fmt.Sprintf("%s %d -1", epoch, v+1) }},
		{"junk events", func(v uint64) string { return fmt.Sprintf("%s %d -1 1 u 1:k", epoch, v+1) }},
		{"gap", func(v uint64) string { return forged(epoch, v+2) }},
		{"other epoch", func(v uint64) string { return forged(other, v+1) }},
	} {
		f.quiesce(t)
		reads := f.reads.n.Load()
		f.publish(t, c.payload(v))
		f.waitReads(t, reads)
		// The pump read Redis, where nothing is new: the next event is the next write's.
		v = f.upsert(t, "k", []byte(c.name))
		f.expect(t, v, "k", []byte(c.name))
	}

	// Events beyond the cap: a plain notice, and a read.
	f.quiesce(t)
	reads = f.reads.n.Load()
	big := bytes.Repeat([]byte("b"), noticeMax)
	v = f.upsert(t, "big", big)
	f.expect(t, v, "big", big)
	if f.reads.n.Load() == reads {
		t.Error("an event beyond the notice's cap was delivered without a read")
	}

	// A notice that arrives during a read is not appended: the pump reads again.
	f.quiesce(t)
	reads = f.reads.n.Load()
	held, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	hold := func() {
		once.Do(func() {
			close(held)
			<-release
		})
	}
	f.reads.hold.Store(&hold)
	defer released.Do(func() { close(release) }) // when the test fails before
	// A read, held.
	f.publish(t, "junk")
	<-held
	v = f.upsert(t, "during", []byte("a read"))
	p := f.pump()
	// The notice arrives, and asks for another read.
	waitPump(t, p, "a notice during a read asks for no read", func(p *pump) bool { return p.stale })
	if h := p.currentLog().Head(); h >= v {
		t.Fatalf("a notice during a read was appended: the log's head is %d", h)
	}
	released.Do(func() { close(release) })
	f.expect(t, v, "during", []byte("a read"))
	// The held read was sent after the write (the hold runs before a read is sent), so it
	// delivered the event; the notice still asks for a second read, which may come after.
	f.waitReads(t, reads+1)
}

func TestNoticeEventsMini(t *testing.T)  { testNoticeEvents(t, newMini(t)) }
func TestNoticeEventsRedis(t *testing.T) { testNoticeEvents(t, newReal(t)) }

// testNoticeEvents checks that the events a notice carries are those the scripts added to
// the stream, field by field, for every kind of event, from the write and the tick scripts,
// with keys, values and reasons of any bytes.
func testNoticeEvents(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	keys := st.keys("t")
	notices := watchNotices(t, f.client.Subscribe(ctx, channel(keys)))
	register(t, f.b.scripts, keys, "another process", time.Hour) // for whom the writes publish
	var head uint64
	check := func(what string) {
		t.Helper()
		n, payload := nextNotice(t, notices, what)
		if n.events == nil {
			t.Fatalf("%s: notice %q carries no events", what, payload)
		}
		r, err := readTail(ctx, f.b.scripts, keys, st.limits, n.epoch, head, 1000)
		if err != nil {
			t.Fatal(err)
		}
		evs := r.events // from the entry of version head on: the caller checks it
		for len(evs) > 0 && evs[0].Version <= head {
			evs = evs[1:]
		}
		if !reflect.DeepEqual(n.events, evs) {
			t.Fatalf("%s: the notice's events\n%+v\nthe stream's\n%+v", what, n.events, evs)
		}
		head = n.head
	}
	odd := "a key: with {spaces} 1:2 \x00\xff"
	if _, err := st.Upsert(ctx, "t", backend.UpsertRequest{Key: odd, Value: []byte("v 3:x \x00 u 1:k"), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	check("upsert")
	ops := []writeOp{
		{code: opUpsert, key: "e", value: []byte{}, ttl: 50 * time.Millisecond},
		{code: opUpsert, key: "e2", value: []byte("2"), ttl: 60 * time.Millisecond},
		{code: opTouch, key: odd, ttl: 2 * time.Hour},
		{code: opTouchQuiet, key: odd, ttl: 3 * time.Hour},
		{code: opUpsert, key: "", value: []byte(" "), ttl: time.Hour},
		{code: opRemove, key: "", value: []byte("gone: 2:ab ")},
		{code: opRemove, key: odd},
	}
	if _, err := runWrite(ctx, f.b.scripts, keys, "", st.limits, ops); err != nil {
		t.Fatal(err)
	}
	check("batch")
	wait := func(d time.Duration) {
		if f.shift != nil {
			f.shift(d)
		} else {
			time.Sleep(d)
		}
	}
	wait(time.Second)
	if _, err := runTick(ctx, f.b.scripts, keys, st.limits, ""); err != nil {
		t.Fatal(err)
	}
	check("tick") // two expire events
	for i := 0; i < 2; i++ {
		// Two expired entries, each expired in a write: the write's own events follow.
		if _, err := st.Upsert(ctx, "t", backend.UpsertRequest{Key: "x" + strconv.Itoa(i), Value: []byte("x"), TTL: 10 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		check("short upsert")
	}
	wait(time.Second)
	if _, err := st.Upsert(ctx, "t", backend.UpsertRequest{Key: "y", Value: []byte("y"), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	check("upsert after expiries")
}

func TestNoticeEventsAlwaysMini(t *testing.T)    { testNoticeEventsAlways(t, newMini(t)) }
func TestNoticeEventsAlwaysRedis(t *testing.T)   { testNoticeEventsAlways(t, newReal(t)) }
func TestNoticeEventsAlwaysCluster(t *testing.T) { testNoticeEventsAlways(t, newCluster(t)) }

// testNoticeEventsAlways checks that a write's notice carries its events whether its channel
// has a subscriber or not: the script encodes them for the stream anyway. It watches the
// notices with a pattern subscription, which is no subscriber of the channel.
func testNoticeEventsAlways(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	keys := st.keys("t")
	notices := watchNotices(t, f.client.PSubscribe(ctx, channel(keys)))
	e, err := st.Upsert(ctx, "t", backend.UpsertRequest{Key: "k", Value: []byte("v"), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	n, payload := nextNotice(t, notices, "k")
	if n.head != e.Version || len(n.events) != 1 || n.events[0].Key != "k" || string(n.events[0].Value) != "v" {
		t.Fatalf("notice %q, want one with the upsert of k at version %d", payload, e.Version)
	}
}

// register registers the readers of a backend whose watcher is watcher in the tenant whose keys
// are keys for d, as open.lua does for a backend's readers, so that the writes of every
// other backend publish their notices.
func register(t *testing.T, sc *scripter, keys []string, watcher string, d time.Duration) {
	t.Helper()
	cmd, a := scriptCmd(keys, openArgs)
	setHead(a, backend.Limits{}.WithDefaults())
	a.set(openWatcher, watcher)
	a.set(openWatchFor, d.Milliseconds())
	if _, err := sc.runCmd(context.Background(), openScript, cmd).Result(); err != nil {
		t.Fatal(err)
	}
}

// watchNotices returns the messages of ps, a new subscription closed when the test ends, once
// the server has confirmed it.
func watchNotices(t *testing.T, ps *redis.PubSub) <-chan *redis.Message {
	t.Helper()
	t.Cleanup(func() { ps.Close() })
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ps.Channel()
}

// nextNotice returns the next notice of ms, parsed, and its payload; it fails the test (of
// what) when none comes or it does not parse.
func nextNotice(t *testing.T, ms <-chan *redis.Message, what string) (notice, string) {
	t.Helper()
	select {
	case m := <-ms:
		n, ok := parseNotice(m.Payload)
		if !ok {
			t.Fatalf("%s: notice %q does not parse", what, m.Payload)
		}
		return n, m.Payload
	case <-time.After(eventWait):
		t.Fatalf("%s: no notice", what)
		return notice{}, ""
	}
}

// encodeNotice returns the notice of events (of versions up to head), as the scripts write it.
func encodeNotice(epoch string, head uint64, dueIn int64, at int64, events []backend.Event) string {
	s := fmt.Sprintf("%s %d %d", epoch, head, dueIn)
	if len(events) == 0 {
		return s
	}
	return s + fmt.Sprintf(" %d", at) + encodeEvents(events)
}

// encodeEvents returns events as a stream entry (and a notice) holds them: lib.lua's event.
func encodeEvents(events []backend.Event) string {
	var b strings.Builder
	kinds := map[backend.EventKind]string{backend.EventUpsert: kindUpsert, backend.EventTouch: kindTouch,
		backend.EventExpire: kindExpire, backend.EventDelete: kindDelete}
	for _, ev := range events {
		body := string(ev.Value) + ev.Reason
		fmt.Fprintf(&b, " %s %d:%s %d %d %d:%s", kinds[ev.Kind], len(ev.Key), ev.Key, ev.CreatedAt, ev.ExpiresAt, len(body), body)
	}
	return b.String()
}

// FuzzParseNotice checks that parseNotice never fails on any payload, and that the events it
// returns are whole: the versions up to the head, each of a kind with its fields, and
// encoded again they give the same notice.
func FuzzParseNotice(f *testing.F) {
	epoch := backend.NewEpoch(time.Unix(1700000000, 0))
	f.Add(epoch + " 12 -1")
	f.Add(epoch + " 12 -1 1700000000000") // a call whose events are too large to carry
	f.Add(epoch + " 12 300 1700000000000 u 1:k 1700000000000 1700000060000 5:hello")
	f.Add(epoch + " 3 0 1700000000000 x 0: 0 1700000000000 0: t 2:ab 0 1700000060000 0: d 1:c 0 0 6:reason")
	f.Add(epoch + " 1 -1 1 u 3:a b 1 2 3:1:x")
	f.Add(epoch + " 1 -1 1 u 99999999999999999:k 1 2 0:")
	f.Add(epoch + " 0 -1 1 u 1:k 1 2 0:")
	f.Add(epoch + " 1 -1 1 q 1:k 1 2 0:")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := parseNotice(s)
		if !ok {
			return
		}
		if n.events == nil {
			return
		}
		at := n.events[0].At
		for i, ev := range n.events {
			if ev.Epoch != n.epoch || ev.At != at || ev.Version != n.head-uint64(len(n.events)-1-i) || ev.Version == 0 {
				t.Fatalf("event %d %+v of notice %+v", i, ev, n)
			}
			if ev.Kind == backend.EventUpsert && ev.Value == nil || ev.Kind != backend.EventUpsert && ev.Value != nil ||
				ev.Kind == 0 || ev.Kind == backend.EventOverflow {
				t.Fatalf("event %d %+v", i, ev)
			}
		}
		again, ok := parseNotice(encodeNotice(n.epoch, n.head, n.dueIn, at, n.events))
		if !ok || !reflect.DeepEqual(again, n) {
			t.Fatalf("encoded again: %+v, %v\nwant %+v", again, ok, n)
		}
	})
}

func TestWritesDeliverLocallyMini(t *testing.T)  { testWritesDeliverLocally(t, newMini) }
func TestWritesDeliverLocallyRedis(t *testing.T) { testWritesDeliverLocally(t, newReal) }

// testWritesDeliverLocally checks that the events of the backend's own writes are in its
// readers' log when the writes return, without their notices (which the hub drops here) and
// without a read: upserts, touches and removes, alone and in a batch, and nothing for quiet
// touches and failed writes; each event as the stream holds it. A reader made after a remove
// returned starts after its event.
func testWritesDeliverLocally(t *testing.T, mk func(testing.TB, ...Option) fixture) {
	f := newNoticeFixture(t, mk)
	ctx := context.Background()
	f.quiesce(t)
	p := f.pump()
	f.b.mu.Lock()
	delete(f.b.watch, p.channel) // the hub drops the tenant's notices from now on
	f.b.mu.Unlock()
	reads := f.reads.n.Load()
	head := p.currentLog().Head()

	e, err := f.st.Upsert(ctx, "t", backend.UpsertRequest{Key: "a", Value: []byte("1"), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if h := p.currentLog().Head(); h != e.Version {
		t.Fatalf("the log's head is %d when the upsert of version %d returns", h, e.Version)
	}
	calls := applyBatch(f.st, "t",
		writeOp{code: opUpsert, key: "b", value: []byte{}, ttl: time.Hour},
		writeOp{code: opUpsert, key: "b", value: []byte("x"), ttl: time.Hour, cond: backend.Condition{Kind: backend.CondIfNew}},
		writeOp{code: opTouchQuiet, key: "a", ttl: 2 * time.Hour},
		writeOp{code: opTouch, key: "a", ttl: 3 * time.Hour},
		writeOp{code: opRemove, key: "b", value: []byte("gone")},
	)
	if calls[1].res.err == nil {
		t.Fatal("the second upsert of b did not fail")
	}
	got := make([]backend.Event, 4) // the upsert of a, and the batch's upsert, touch and remove
	for i := range got {
		got[i] = next(t, f.sub)
		got[i].Memo = nil
	}
	if n := f.reads.n.Load() - reads; n != 0 {
		t.Fatalf("%d reads, want none", n)
	}
	r, err := readTail(ctx, f.b.scripts, f.st.keys("t"), f.st.limits, e.Epoch, head, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r.events) {
		t.Fatalf("the events:\n%+v\nthe stream's:\n%+v", got, r.events)
	}

	// A reader made once the remove returned starts after it, whether or not the pump heard.
	late := subscribe(t, f.st, "t", nil)
	f.b.mu.Lock()
	f.b.watch[p.channel] = p
	f.b.mu.Unlock()
	p.nudge() // reads what the dropped notices told
	v := f.upsert(t, "after", []byte("2"))
	if ev := next(t, late); ev.Version != v || ev.Key != "after" {
		t.Fatalf("the late reader's first event is %v %q of version %d, want the upsert of %q at %d", ev.Kind, ev.Key, ev.Version, "after", v)
	}
}

// A hub whose connection is up but gets nothing that is published (its node has left the
// cluster, say: it still answers the pings) is found out by its probe, and replaced.
func TestHubDeafReplacedMiniredis(t *testing.T) {
	f := newMini(t)
	f.b.probe.every = 100 * time.Millisecond
	st := f.open(t, backend.Limits{})
	sub := subscribe(t, st, "a", nil) // the hub and the poll start
	defer sub.Close()
	elsewhere := miniredis.RunT(t)
	other := redis.NewClient(&redis.Options{Addr: elsewhere.Addr()})
	defer other.Close()
	f.b.hmu.Lock()
	h := f.b.hub
	f.b.hmu.Unlock()
	ctx := context.Background()
	deaf := other.Subscribe(ctx, h.probe) // a server that nobody publishes on
	defer deaf.Close()
	h.mu.Lock()
	live, losses := h.ps, h.losses.Load()
	h.ps = deaf
	h.mu.Unlock()
	defer live.Close() // not before: the hub would count its end as a loss
	waitFor(t, "the deaf connection to be replaced", func() bool { return h.ps != deaf }, &h.mu)
	if h.losses.Load() == losses {
		t.Error("the deaf connection was not counted as a loss")
	}
	upsert(t, st, "a", "k", "v", time.Hour)
	if ev := next(t, sub); ev.Key != "k" {
		t.Fatalf("event %+v after the hub was replaced, want the upsert of k", ev)
	}
}
