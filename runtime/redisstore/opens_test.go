package redisstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// openCounter counts the open.lua calls of a client, alone or in pipelines.
type openCounter struct{ n atomic.Int64 }

func (c *openCounter) count(cmd redis.Cmder) {
	if scriptOf(cmd.Args()) == openScript {
		c.n.Add(1)
	}
}

func (c *openCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *openCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		return next(ctx, cmd)
	}
}

func (c *openCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}

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

func TestOpenLiveMiniredis(t *testing.T) { testOpenLive(t, newMini(t)) }
func TestOpenLiveRedis(t *testing.T)     { testOpenLive(t, newReal(t)) }

// testOpenLive checks that a subscription of a tenant whose pump is live is made without a
// read, and starts after every write of the backend that returned before it was asked for:
// each one opened right after an upsert returned (before the pump has its notice, mostly)
// gets the next upsert first, never that one.
func testOpenLive(t *testing.T, f fixture) {
	st := f.open(t, backend.Limits{})
	subscribe(t, st, "room", nil)
	livePump(t, f.b, st, "room")
	var opens openCounter
	f.client.AddHook(&opens)
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
