package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// isOpen selects the calls of open.lua.
func isOpen(cmd redis.Cmder) bool { return scriptOf(cmd.Args()) == openScript }

// livePump returns the pump of the tenant once it is settled: a subscription opened now
// takes the live path.
func livePump(t *testing.T, b *Backend, st *store, tenant string) *pump {
	t.Helper()
	b.mu.Lock()
	p := b.pumps[tenantKey{st.id, tenant}]
	b.mu.Unlock()
	if p == nil {
		t.Fatal("no pump")
	}
	waitPump(t, p, "the pump never saw the tenant's head", func(p *pump) bool { return p.settled != 0 && p.settled == p.losses()+1 })
	return p
}

// The tests that count reads poll once an hour: the hub pings a connection silent for the poll
// interval (up to a second) and replaces it if the ping's reply takes as long, after which no
// pump is live until checked, and opens read. At the fixtures' 50 and 200 ms a loaded machine
// (CI under -race) sometimes took that long.
func TestOpenLiveMiniredis(t *testing.T) { testOpenLive(t, newMini(t, WithPollInterval(time.Hour))) }
func TestOpenLiveRedis(t *testing.T)     { testOpenLive(t, newReal(t, WithPollInterval(time.Hour))) }

// testOpenLive checks that a subscription of a tenant whose pump is live is made without a
// read, and starts after every write of the backend that returned before it was asked for:
// each one opened right after an upsert returned (before the pump has its notice, mostly)
// gets the next upsert first, never that one.
func testOpenLive(t *testing.T, f fixture) {
	st := f.open(t, backend.Limits{})
	subscribe(t, st, "room", nil)
	livePump(t, f.b, st, "room")
	opens := countCmds(isOpen)
	f.client.AddHook(opens)
	for i := range 200 {
		e := upsert(t, st, "room", "k", "before", time.Hour)
		sub, err := st.Subscribe(context.Background(), "room", backend.SubscribeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if start := sub.Start(); start.Epoch != e.Epoch || start.Seq < e.Version {
			t.Fatalf("open %d: starts at %v, before the upsert of version %d that returned", i, start, e.Version)
		}
		e2 := upsert(t, st, "room", "k", "after", time.Hour)
		if ev := next(t, sub); ev.Version != e2.Version || string(ev.Value) != "after" {
			t.Fatalf("open %d: first event %+v, want the later upsert's, version %d", i, ev, e2.Version)
		}
		sub.Close()
	}
	if n := opens.n.Load(); n != 0 {
		t.Errorf("%d reads for 200 subscriptions of a live tenant, want 0", n)
	}
}

func TestOpenLiveAfterMiniredis(t *testing.T) {
	testOpenLiveAfter(t, newMini(t, WithReaderBuffer(4), WithPollInterval(time.Hour)))
}
func TestOpenLiveAfterRedis(t *testing.T) {
	testOpenLiveAfter(t, newReal(t, WithReaderBuffer(4), WithPollInterval(time.Hour)))
}

// testOpenLiveAfter checks that a subscription after a cursor of a tenant whose pump is live
// is made without a read when the pump knows the cursor's version (a snapshot's, or an older
// one), and gets every event after it, those written between the snapshot and the call first,
// and from Redis those the pump's log (4 events) no longer holds; and that a cursor beyond
// what the pump knows, or of another epoch, is read, and refused or overflowed as before.
func testOpenLiveAfter(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	subscribe(t, st, "room", nil)
	livePump(t, f.b, st, "room")
	opens := countCmds(isOpen)
	f.client.AddHook(opens)
	first := upsert(t, st, "room", "k", "v0", time.Hour)
	for i := range 50 {
		snap, err := st.Snapshot(ctx, "room", "")
		if err != nil {
			t.Fatal(err)
		}
		between := upsert(t, st, "room", "k", "between", time.Hour)
		sub := subscribe(t, st, "room", &snap.Cursor)
		if start := sub.Start(); start != snap.Cursor {
			t.Fatalf("open %d: starts at %v, want the snapshot's %v", i, start, snap.Cursor)
		}
		if ev := next(t, sub); ev.Version != between.Version || string(ev.Value) != "between" {
			t.Fatalf("open %d: first event %+v, want the upsert after the snapshot, version %d", i, ev, between.Version)
		}
		sub.Close()
	}
	// An older cursor: the events after it, the first ones read from Redis.
	old := backend.Cursor{Epoch: first.Epoch, Seq: first.Version}
	sub := subscribe(t, st, "room", &old)
	for v := first.Version + 1; v <= first.Version+10; v++ {
		if ev := next(t, sub); ev.Version != v {
			t.Fatalf("after %v: event of version %d, want %d", old, ev.Version, v)
		}
	}
	sub.Close()
	if n := opens.n.Load(); n != 0 {
		t.Errorf("%d reads for 51 subscriptions after cursors the live pump knows, want 0", n)
	}

	last := upsert(t, st, "room", "k", "last", time.Hour)
	ahead := backend.Cursor{Epoch: last.Epoch, Seq: last.Version + 5}
	if _, err := st.Subscribe(ctx, "room", backend.SubscribeRequest{After: &ahead}); !errors.Is(err, backend.ErrInvalidCursor) {
		t.Errorf("subscribe after %v, beyond the head %d: %v, want ErrInvalidCursor", ahead, last.Version, err)
	}
	other := backend.Cursor{Epoch: backend.NewEpoch(time.Unix(1, 0)), Seq: 1}
	sub = subscribe(t, st, "room", &other)
	if ev := next(t, sub); ev.Kind != backend.EventOverflow || ev.After != other {
		t.Errorf("after a cursor of another epoch: first event %+v, want an overflow after %v", ev, other)
	}
	sub.Close()
	if n := opens.n.Load(); n != 2 {
		t.Errorf("%d reads for a cursor ahead of the head and one of another epoch, want 2", n)
	}
}

func TestOpenBurstMiniredis(t *testing.T) { testOpenBurst(t, newMini(t)) }
func TestOpenBurstRedis(t *testing.T)     { testOpenBurst(t, newReal(t)) }

// testOpenBurst checks that the subscriptions that wait for an open in flight share one read
// per tenant when their batch goes, and that each starts after every write that returned
// before it was asked for, and gets every event after that.
func testOpenBurst(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	subscribe(t, st, "warm", nil).Close() // the script loaded: each read below is one call
	h := holdFirst(isOpen)
	f.client.AddHook(h)
	first := make(chan error, 1)
	go func() {
		sub, err := st.Subscribe(ctx, "first", backend.SubscribeRequest{})
		if err == nil {
			t.Cleanup(func() { sub.Close() })
		}
		first <- err
	}()
	<-h.held
	before := map[string]backend.Entry{
		"room":  upsert(t, st, "room", "k", "v1", time.Hour),
		"other": upsert(t, st, "other", "k", "v1", time.Hour),
	}
	tenants := []string{"room", "other", "room", "room"}
	const n = maxOpenBatch - 1 // one batch
	subs := make([]backend.Subscription, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			subs[i], err = st.Subscribe(ctx, tenants[i%len(tenants)], backend.SubscribeRequest{})
			errs <- err
		}()
	}
	waitQueued(t, &f.b.opens, f.b.node(ctx, st.keys("room")[0]), n)
	close(h.release)
	recvErrs(t, first, 1)
	recvErrs(t, errs, n)
	if got := h.n.Load(); got != 3 {
		t.Errorf("%d reads for one open and a batch of %d of two tenants, want 3", got, n)
	}
	after := map[string]backend.Entry{
		"room":  upsert(t, st, "room", "k", "v2", time.Hour),
		"other": upsert(t, st, "other", "k", "v2", time.Hour),
	}
	for i, sub := range subs {
		ten := tenants[i%len(tenants)]
		if start := sub.Start(); start.Epoch != before[ten].Epoch || start.Seq < before[ten].Version {
			t.Fatalf("%s: starts at %v, before the upsert of version %d that returned", ten, start, before[ten].Version)
		}
		if ev := next(t, sub); ev.Version != after[ten].Version || string(ev.Value) != "v2" {
			t.Fatalf("%s: first event %+v, want the upsert after the opens, version %d", ten, ev, after[ten].Version)
		}
		sub.Close()
	}
}

func TestOpenAfterResetMiniredis(t *testing.T) { testOpenAfterReset(t, newMini(t)) }
func TestOpenAfterResetRedis(t *testing.T)     { testOpenAfterReset(t, newReal(t)) }

// testOpenAfterReset checks that a subscription opened after a write of the backend in a new
// epoch of the tenant (its keys deleted) starts in that epoch, after that write, even when
// the tenant's pump has not seen the epoch yet.
func testOpenAfterReset(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	upsert(t, st, "room", "k", "old", time.Hour)
	subscribe(t, st, "room", nil)
	livePump(t, f.b, st, "room")
	upsert(t, st, "room", "k", "old", time.Hour)
	if err := f.client.Del(ctx, st.keys("room")...).Err(); err != nil {
		t.Fatal(err)
	}
	e := upsert(t, st, "room", "k", "new", time.Hour)
	sub := subscribe(t, st, "room", nil)
	if start := sub.Start(); start.Epoch != e.Epoch || start.Seq < e.Version {
		t.Fatalf("starts at %v, before the upsert of %s version %d that returned", start, e.Epoch, e.Version)
	}
	e2 := upsert(t, st, "room", "k", "next", time.Hour)
	if ev := next(t, sub); ev.Epoch != e2.Epoch || ev.Version != e2.Version {
		t.Fatalf("first event %+v, want the later upsert's, %s version %d", ev, e2.Epoch, e2.Version)
	}
}
