package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// catchUps is an Observer that reports each catch-up on a channel.
type catchUps struct {
	backend.NopObserver
	c chan struct{}
}

func (o catchUps) CatchUp(store, tenant string) {
	select {
	case o.c <- struct{}{}:
	default:
	}
}

// TestNextWakeDroppedEvent checks that a reader that found its next event yet to come in the
// pump's log, and then, before it took the channel to wait on, missed the wake-up of appends
// that also dropped that event (a buffer of 1), does not wait: it catches up from Redis at once.
func TestNextWakeDroppedEvent(t *testing.T) {
	obs := catchUps{c: make(chan struct{}, 1)}
	f := newMini(t, WithReaderBuffer(1), WithObserver(obs))
	st := f.open(t, backend.Limits{})
	sub := subscribe(t, st, "t", nil).(*subscription)
	sub.beforeWait = func() { // as the pump would deliver two events, here and now
		sub.beforeWait = nil
		l := sub.log
		h := l.Head()
		l.Append(&backend.Event{Kind: backend.EventUpsert, Key: "k", Epoch: l.Epoch(), Version: h + 1})
		l.Append(&backend.Event{Kind: backend.EventUpsert, Key: "k", Epoch: l.Epoch(), Version: h + 2})
		l.Wake()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sub.Next(ctx) // Redis has none of those events: it waits after its catch-up
	}()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-obs.c:
	case <-time.After(10 * time.Second): // it catches up at once when it is right
		t.Fatal("no catch-up after the next event was dropped: a lost wake-up")
	}
}

// TestPumpSubscriptionList checks the list of a pump's subscriptions: each Close takes its
// own out, whatever its place, the others stay listed in both directions, and the last Close
// stops the pump; a subscription the pump's stop took out leaves the list as it is.
func TestPumpSubscriptionList(t *testing.T) {
	f := newMini(t)
	st := f.open(t, backend.Limits{})
	var subs []*subscription
	for range 5 {
		subs = append(subs, subscribe(t, st, "t", nil).(*subscription))
	}
	p := subs[0].p
	listed := func() []*subscription {
		p.mu.Lock()
		defer p.mu.Unlock()
		var fwd []*subscription
		var last *subscription
		for s := p.subs; s != nil; s = s.nextSub {
			if s.prevSub != last {
				t.Fatalf("subscription %p: prevSub %p, want %p", s, s.prevSub, last)
			}
			fwd = append(fwd, s)
			last = s
		}
		return fwd
	}
	open := map[*subscription]bool{}
	for _, s := range subs {
		open[s] = true
	}
	for _, i := range []int{2, 0, 4, 1} {
		subs[i].Close()
		delete(open, subs[i])
		got := listed()
		if len(got) != len(open) {
			t.Fatalf("after closing subscription %d: %d listed, want %d", i, len(got), len(open))
		}
		for _, s := range got {
			if !open[s] {
				t.Fatalf("after closing subscription %d: a closed one is listed", i)
			}
		}
		if n := f.b.pumpCount(); n != 1 {
			t.Fatalf("after closing subscription %d: %d pumps, want 1", i, n)
		}
	}
	subs[3].Close()
	if got := listed(); len(got) != 0 {
		t.Fatalf("%d subscriptions listed after the last Close", len(got))
	}
	if n := f.b.pumpCount(); n != 0 {
		t.Fatalf("%d pumps after the last Close, want 0", n)
	}

	// stop ends the subscriptions of a pump and takes them out; a Close after it changes
	// nothing.
	a, b := subscribe(t, st, "u", nil).(*subscription), subscribe(t, st, "u", nil).(*subscription)
	p = a.p
	p.stop()
	if got := listed(); len(got) != 0 || a.nextSub != nil || a.prevSub != nil || b.nextSub != nil || b.prevSub != nil {
		t.Fatalf("after stop: %d listed, links %p %p %p %p; want none", len(got), a.nextSub, a.prevSub, b.nextSub, b.prevSub)
	}
	if _, err := a.Next(context.Background()); err == nil {
		t.Fatal("Next of a stopped pump's subscription: no error")
	}
	a.Close()
	b.Close()
}

// TestPumpRunsWhenNeeded checks that a pump makes what its goroutine needs (its context and
// kick channel) only when the goroutine first starts, which an idle tenant's never does; and
// that a stopped pump, whether it ran or not, starts no goroutine again.
func TestPumpRunsWhenNeeded(t *testing.T) {
	f := newMini(t)
	st := f.open(t, backend.Limits{})
	sub := subscribe(t, st, "t", nil).(*subscription)
	p := sub.p
	if p.rn.Load() != nil || p.started.Load() {
		t.Fatal("the pump of an idle tenant's new reader made its goroutine's state, or started it")
	}

	// A read to make starts the goroutine, which reads, delivers, and rests again.
	if _, err := st.Upsert(context.Background(), "t", backend.UpsertRequest{Key: "k", Value: []byte("v"), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	p.nudge()
	r := p.rn.Load()
	if r == nil {
		t.Fatal("a nudged pump made no state for its goroutine")
	}
	if ev := next(t, sub); ev.Kind != backend.EventUpsert || ev.Key != "k" {
		t.Fatalf("event %+v, want the upsert of k", ev)
	}
	for deadline := time.Now().Add(10 * time.Second); p.started.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the pump's goroutine did not rest within 10 s")
		}
	}
	if p.rn.Load() != r {
		t.Fatal("the pump's goroutine state was made again")
	}

	// Its last reader gone, the pump is stopped: its context is canceled, and nothing starts
	// its goroutine again.
	sub.Close()
	if r.ctx.Err() == nil {
		t.Fatal("the stopped pump's context is not canceled")
	}
	p.nudge()
	if p.started.Load() {
		t.Fatal("a stopped pump started its goroutine")
	}

	// A pump stopped before it ever ran never makes the state.
	idle := subscribe(t, st, "u", nil).(*subscription)
	q := idle.p
	idle.Close()
	q.nudge()
	if q.rn.Load() != nil || q.started.Load() {
		t.Fatal("a pump stopped before it ran made its goroutine's state, or started it, when nudged")
	}
}

// hubOf returns b's hub, nil before its first reader.
func hubOf(b *Backend) *hub {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	return b.hub
}

// TestHubSpareMap checks that the hub keeps the map of a subscribe flush for the next one only
// when the flush wrote at most maxOpenBatch channels: a map keeps the size of the most it held.
func TestHubSpareMap(t *testing.T) {
	f := newMini(t)
	subscribe(t, f.open(t, backend.Limits{}), "t", nil)
	h := hubOf(f.b)
	// flush writes n changes in one flush: the n-1 first wait while a flush seems in progress.
	// (No pump watches their channels: the flush subscribes none of them.)
	flush := func(n int) (spare map[string]struct{}) {
		h.smu.Lock()
		h.flushing = true
		h.smu.Unlock()
		for i := range n - 1 {
			h.sync(context.Background(), fmt.Sprint("x", i), false)
		}
		h.smu.Lock()
		h.flushing = false
		h.smu.Unlock()
		h.sync(context.Background(), "last", true)
		h.smu.Lock()
		defer h.smu.Unlock()
		return h.spare
	}
	if spare := flush(maxOpenBatch); spare == nil || len(spare) != 0 {
		t.Fatalf("after a flush of %d channels: spare %v, want an empty map", maxOpenBatch, spare)
	}
	if spare := flush(maxOpenBatch + 1); spare != nil {
		t.Fatalf("after a flush of %d channels: spare of %d, want none kept", maxOpenBatch+1, len(spare))
	}
}

// Closing a tenant's last reader does not wait for the hub's connection: a goroutine of the
// hub writes its UNSUBSCRIBE, and the closes that follow while it writes join it. Here the
// connection is held up (its lock taken, as by a write that blocks) while three readers
// close one after the other; once it is free, every channel is unsubscribed.
func TestHubUnsubscribesAside(t *testing.T) {
	f := newMini(t)
	st := f.open(t, backend.Limits{})
	subs := make([]backend.Subscription, 3)
	for i := range subs {
		subs[i] = subscribe(t, st, fmt.Sprint("t", i), nil)
	}
	h := hubOf(f.b)
	h.mu.Lock()
	if len(h.on) != len(subs) {
		h.mu.Unlock()
		t.Fatalf("%d channels subscribed, want %d", len(h.on), len(subs))
	}
	closed := make(chan struct{})
	go func() {
		for _, s := range subs {
			s.Close()
		}
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		h.mu.Unlock()
		t.Fatal("closing the readers waited for the hub's connection")
	}
	h.mu.Unlock()
	waitFor(t, "every channel unsubscribed", func() bool { return len(h.on) == 0 }, &h.mu)
	waitFor(t, "the hub's writes to end", func() bool { return !h.flushing && len(h.changed) == 0 }, &h.smu)
}
