package redisstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// Several backends (as several processes would be, each with a client of its own) write one
// tenant at once, with readers in each, and with no rollback no reader gets an overflow: each
// gets every version after its start once, in order, the same event at each version as every
// other reader, up to the last write. The writes are of every kind (upserts with TTLs short
// enough that the ticks of every backend's pump and the writes themselves expire entries,
// touches, quiet touches, removes), batched by group commit; the polls (every 20 ms) compare
// the tenant's version and time with the pumps' while the events flow; readers open while the
// writes race, one after a snapshot's cursor. Nothing is trimmed (the limits' defaults), so an
// overflow can only be a false alarm, such as a history taken for another (see
// pump.otherHistory), and a pump that saw one counts a fork.
func TestConcurrentBackendsNoOverflowRedis(t *testing.T) {
	const backends, writers, each = 3, 4, 120
	ctx := context.Background()
	first := newReal(t, WithPollInterval(20*time.Millisecond))
	stores := []*store{first.open(t, backend.Limits{})}
	for range backends - 1 {
		// Another process: a client and a backend of its own, on the same keys.
		client := redistest.Client(t)
		b := New(client, WithKeyPrefix(first.b.prefix), WithPollInterval(20*time.Millisecond))
		t.Cleanup(func() {
			b.Close()
			client.Close()
		})
		st, err := b.Open("test", backend.Limits{}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st.(*store))
	}
	const ten = "load"
	// Every reader's event at each version must be the same: the first one seen is kept.
	var seen sync.Map // version -> event
	deadline := time.Now().Add(60 * time.Second)
	var overflows atomic.Int64
	var readers sync.WaitGroup
	read := func(name string, sub backend.Subscription) {
		readers.Go(func() {
			rctx, cancel := context.WithDeadline(ctx, deadline)
			defer cancel()
			pos := sub.Start()
			for {
				ev, err := sub.Next(rctx)
				if err != nil {
					t.Errorf("%s from %v: after version %d: %v", name, sub.Start(), pos.Seq, err)
					return
				}
				if ev.Kind == backend.EventOverflow {
					overflows.Add(1)
					t.Errorf("%s from %v: after version %d: overflow %+v", name, sub.Start(), pos.Seq, *ev)
					return
				}
				if ev.Epoch != pos.Epoch || ev.Version != pos.Seq+1 {
					t.Errorf("%s from %v: after %v: event %s %d of %s, want version %d", name, sub.Start(), pos, ev.Kind, ev.Version, ev.Epoch, pos.Seq+1)
					return
				}
				pos = ev.Cursor()
				got := fmt.Sprintf("%s %q %d %d %d %q %q", ev.Kind, ev.Key, ev.At, ev.CreatedAt, ev.ExpiresAt, ev.Value, ev.Reason)
				if prev, loaded := seen.LoadOrStore(ev.Version, got); loaded && prev != got {
					t.Errorf("%s: version %d is %s, another reader got %s", name, ev.Version, got, prev)
					return
				}
				if ev.Key == "end" {
					return
				}
			}
		})
	}
	for i, st := range stores {
		for j := range 2 {
			read(fmt.Sprintf("reader %d.%d", i, j), subscribe(t, st, ten, nil))
		}
	}

	// The writers, and readers that open while they write.
	var ops atomic.Int64
	var wg sync.WaitGroup
	for i, st := range stores {
		for w := range writers {
			wg.Go(func() {
				for n := range each {
					key := fmt.Sprintf("k%d", (i*writers+w+n)%12)
					var err error
					switch n % 6 {
					case 0, 3: // expires soon: a tick, or a later write, expires it
						_, err = st.Upsert(ctx, ten, backend.UpsertRequest{Key: key, Value: []byte(fmt.Sprint(i, w, n)), TTL: time.Duration(5+n%40) * time.Millisecond})
					case 1:
						_, err = st.Upsert(ctx, ten, backend.UpsertRequest{Key: key, Value: []byte(fmt.Sprint(i, w, n)), TTL: time.Hour})
					case 2:
						_, err = st.Touch(ctx, ten, backend.TouchRequest{Key: key, TTL: time.Minute})
					case 4:
						_, err = st.Touch(ctx, ten, backend.TouchRequest{Key: key, TTL: time.Minute, Quiet: true})
					case 5:
						_, err = st.Remove(ctx, ten, backend.RemoveRequest{Key: key, Reason: "r"})
					}
					if err != nil {
						t.Error(err)
						return
					}
					if ops.Add(1) == int64(backends*writers*each/3) {
						// Readers that open while the writes race: at the head, and after the
						// cursor of a snapshot.
						for k, st := range stores {
							sub, err := st.Subscribe(ctx, ten, backend.SubscribeRequest{})
							if err != nil {
								t.Error(err)
								return
							}
							t.Cleanup(func() { sub.Close() })
							read(fmt.Sprintf("late reader %d", k), sub)
						}
						snap, err := stores[1].Snapshot(ctx, ten, "")
						if err != nil {
							t.Error(err)
							return
						}
						sub, err := stores[2].Subscribe(ctx, ten, backend.SubscribeRequest{After: &snap.Cursor})
						if err != nil {
							t.Error(err)
							return
						}
						t.Cleanup(func() { sub.Close() })
						read("reader after a snapshot", sub)
					}
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// The last write, once the short-lived entries are expired: no version comes after it.
	time.Sleep(100 * time.Millisecond)
	end := upsert(t, stores[0], ten, "end", "", time.Hour)
	readers.Wait()
	if n := overflows.Load(); n > 0 {
		t.Fatalf("%d readers got an overflow", n)
	}
	for i, st := range stores {
		if p := st.pump(ten); p != nil && p.forks.Load() != 0 {
			t.Errorf("backend %d: the pump took the tenant for going back %d times", i, p.forks.Load())
		}
	}
	t.Logf("%d writes, %d versions", ops.Load(), end.Version)
}

// The event at the pump's head gone from the stream by the retention (a quiet touch, which
// makes no version, trims the stream of an idle tenant to nothing) is no other history: the
// meta's time of the last version is still that of the pump's head, and the readers go on.
func TestHeadRetainedNoMoreMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{EventRetention: time.Second}), "idle"
	sub := subscribe(t, st, ten, nil)
	for _, v := range []string{"a", "b", "c"} {
		upsert(t, st, ten, "k", v, time.Hour)
	}
	expectVersions(t, sub, 1, 3)
	f.advance(t, 2*time.Second)
	if _, err := st.Touch(ctx, ten, backend.TouchRequest{Key: "k", TTL: time.Hour, Quiet: true}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.client.XLen(ctx, st.keys(ten)[keyEvents]).Result(); err != nil || n != 0 {
		t.Fatalf("the stream holds %d entries (%v), want none", n, err)
	}
	f.b.nudgeAll()
	p := st.pump(ten)
	waitPump(t, p, "the pump stays busy", func(p *pump) bool { return !p.stale && !p.busy })
	e := upsert(t, st, ten, "k", "d", time.Hour)
	if ev := next(t, sub); ev.Kind != backend.EventUpsert || ev.Version != e.Version {
		t.Fatalf("after the trim: %s version %d, want the upsert of version %d", ev.Kind, ev.Version, e.Version)
	}
	if n := p.forks.Load(); n != 0 {
		t.Fatalf("the pump took the tenant for going back %d times", n)
	}
}
