package redisstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// connFixture is a backend on a client with a small pool (2 connections per server) and a
// name of its own, so that the test can find its connections in CLIENT LIST.
type connFixture struct {
	fixture
	name string
}

func newConnFixture(t *testing.T, target string) connFixture {
	name := "ephemeral-test-" + backend.NewEpoch(time.Now())
	var client redis.UniversalClient
	var mini *miniredis.Miniredis
	switch target {
	case "mini":
		mini = miniredis.RunT(t)
		client = redis.NewClient(&redis.Options{Addr: mini.Addr(), PoolSize: 2, ClientName: name})
	case "redis":
		addr := os.Getenv(redistest.EnvAddr)
		if addr == "" {
			t.Skipf("set %s to run against a real Redis server", redistest.EnvAddr)
		}
		client = redis.NewClient(&redis.Options{Addr: addr, PoolSize: 2, ClientName: name})
	case "cluster":
		addrs := os.Getenv(redistest.EnvCluster)
		if addrs == "" {
			t.Skipf("set %s to run against a Redis Cluster", redistest.EnvCluster)
		}
		client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ","), PoolSize: 2, ClientName: name})
	}
	prefix := "ephemeral-test-" + backend.NewEpoch(time.Now())
	b := New(client, WithKeyPrefix(prefix))
	t.Cleanup(func() {
		b.Close()
		deleteKeys(client, prefix)
		client.Close()
	})
	return connFixture{fixture: fixture{b: b, client: client, mini: mini, real: mini == nil}, name: name}
}

// subscribed returns, for each server (each master of a cluster), how many connections of
// the fixture's client are subscribed to a channel, from CLIENT LIST. On miniredis, which has
// no CLIENT LIST, it counts the backend's pub/sub connections.
func (f connFixture) subscribed(t *testing.T) map[string]int {
	t.Helper()
	ctx := context.Background()
	if f.mini != nil {
		n := 0
		if hubOf(f.b) != nil {
			n = 1
		}
		return map[string]int{f.mini.Addr(): n}
	}
	counts := make(map[string]int)
	var mu sync.Mutex
	count := func(ctx context.Context, c *redis.Client) error {
		list, err := c.ClientList(ctx).Result()
		if err != nil {
			return err
		}
		n := 0
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " name="+f.name+" ") && (!strings.Contains(line, " sub=0 ") || strings.Contains(line, " ssub=") && !strings.Contains(line, " ssub=0 ")) {
				n++
			}
		}
		mu.Lock()
		counts[c.Options().Addr] = n
		mu.Unlock()
		return nil
	}
	if err := redistest.EachMaster(ctx, f.client, count); err != nil {
		t.Fatal(err)
	}
	return counts
}

func TestManyTenantsMiniredis(t *testing.T) { testManyTenants(t, newConnFixture(t, "mini")) }
func TestManyTenantsRedis(t *testing.T)     { testManyTenants(t, newConnFixture(t, "redis")) }
func TestManyTenantsCluster(t *testing.T)   { testManyTenants(t, newConnFixture(t, "cluster")) }

// 1,200 tenants with a reader each hold one subscribed connection (in a cluster, one in all, so
// at most one per master), outside the command pool of 2, which still serves writes and new
// readers; every reader gets its tenant's event and no other.
func testManyTenants(t *testing.T, f connFixture) {
	const tenants = 1200
	st := f.open(t, backend.Limits{})
	ctx := context.Background()
	subs := make([]backend.Subscription, tenants)
	for i := range subs {
		subs[i] = subscribe(t, st, fmt.Sprintf("t%d", i), nil)
	}
	counts := f.subscribed(t)
	total := 0
	for addr, n := range counts {
		if n > 1 {
			t.Errorf("%d subscribed connections to %s, want at most 1", n, addr)
		}
		total += n
	}
	if total == 0 {
		t.Errorf("no subscribed connection (%v)", counts)
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < tenants; i += 8 {
				_, err := st.Upsert(ctx, fmt.Sprintf("t%d", i), backend.UpsertRequest{Key: fmt.Sprintf("k%d", i), Value: []byte("v"), TTL: time.Hour})
				if err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d upserts failed", n)
	}
	for i, sub := range subs {
		if ev := next(t, sub); ev.Kind != backend.EventUpsert || ev.Key != fmt.Sprintf("k%d", i) || ev.Version != 1 {
			t.Fatalf("reader of t%d: %+v, want its upsert", i, ev)
		}
	}
	late := subscribe(t, st, "t0", nil)
	upsert(t, st, "t0", "again", "v", time.Hour)
	for _, sub := range []backend.Subscription{subs[0], late} {
		if ev := next(t, sub); ev.Key != "again" || ev.Version != 2 {
			t.Fatalf("event %+v, want version 2", ev)
		}
	}
	if f.mini != nil {
		if n := f.client.PoolStats().TotalConns; n > 2 {
			t.Errorf("%d connections in the command pool, want at most 2", n)
		}
	}
	// The last reader of a tenant unsubscribes its channel.
	c, ok := f.client.(*redis.Client)
	if !ok {
		return // a cluster's channels are on one of its nodes
	}
	pattern := st.base + "*"
	if chans, err := c.PubSubChannels(ctx, pattern).Result(); err != nil || len(chans) != tenants {
		t.Fatalf("%d channels subscribed for %d tenants with readers (%v)", len(chans), tenants, err)
	}
	for _, sub := range append(subs, late) {
		sub.Close()
	}
	deadline := time.Now().Add(eventWait)
	for {
		chans, err := c.PubSubChannels(ctx, pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(chans) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d channels still subscribed after every reader closed, e.g. %q", len(chans), chans[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scriptCounter counts the script calls of a client that ran, by script.
type scriptCounter struct{ tick, read atomic.Int32 }

func (c *scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if notRun(err) {
			return err // sent again, as it or with EVAL
		}
		switch scriptOf(cmd.Args()) {
		case tickScript:
			c.tick.Add(1)
		case readScript:
			c.read.Add(1)
		}
		return err
	}
}

func (c *scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestExpiryWithoutTicksMiniredis(t *testing.T) {
	m := miniredis.RunT(t) // on the real clock
	testExpiryWithoutTicks(t, redis.NewClient(&redis.Options{Addr: m.Addr()}))
}

func TestExpiryWithoutTicksRedis(t *testing.T) {
	addr := os.Getenv(redistest.EnvAddr)
	if addr == "" {
		t.Skipf("set %s to run against a real Redis server", redistest.EnvAddr)
	}
	testExpiryWithoutTicks(t, redis.NewClient(&redis.Options{Addr: addr}))
}

// Events reach a reader without a tick script before each read; the tick runs when an
// expiry is due, by the pump's timer, and its expire event arrives soon after the expiry.
func testExpiryWithoutTicks(t *testing.T, client *redis.Client) {
	var calls scriptCounter
	client.AddHook(&calls)
	prefix := "ephemeral-test-" + backend.NewEpoch(time.Now())
	b := New(client, WithKeyPrefix(prefix))
	t.Cleanup(func() {
		b.Close()
		deleteKeys(client, prefix)
		client.Close()
	})
	st, err := b.Open("test", backend.Limits{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, st, "exp", nil)
	for i := range 50 {
		upsert(t, st, "exp", fmt.Sprintf("k%d", i), "v", time.Hour)
	}
	expectVersions(t, sub, 1, 50)
	if n := calls.tick.Load(); n != 0 {
		t.Fatalf("%d ticks for 50 events and no expiry due, want 0", n)
	}
	e := upsert(t, st, "exp", "short", "v", 300*time.Millisecond)
	expectVersions(t, sub, 51, 51)
	ev := next(t, sub)
	late := time.Since(time.UnixMilli(e.ExpiresAt))
	if ev.Kind != backend.EventExpire || ev.Key != "short" {
		t.Fatalf("event %+v, want the expiry of short", ev)
	}
	if n := calls.tick.Load(); n < 1 || n > 3 {
		t.Errorf("%d ticks for one expiry, want 1 (a few if the clocks disagree)", n)
	}
	t.Logf("expire event %v after the expiry; %d ticks, %d reads", late, calls.tick.Load(), calls.read.Load())
}

func TestPubSubKilledRedis(t *testing.T)   { testPubSubKilled(t, newReal(t)) }
func TestPubSubKilledCluster(t *testing.T) { testPubSubKilled(t, newCluster(t)) }

// A notice published while the pub/sub connection is down is lost; the pump's tenant is
// checked when the connection is back and subscribed again, so the readers get the events
// anyway, in tenants of every slot.
func testPubSubKilled(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	tenants := []string{"a", "b", "c", "d", "e", "f"}
	subs := make([]backend.Subscription, len(tenants))
	for i, ten := range tenants {
		subs[i] = subscribe(t, st, ten, nil)
		upsert(t, st, ten, "k", "v", time.Hour)
		expectVersions(t, subs[i], 1, 1)
	}
	kill := func(ctx context.Context, c *redis.Client) error {
		return c.ClientKillByFilter(ctx, "TYPE", "pubsub").Err()
	}
	for v := uint64(2); v < 5; v++ {
		if err := redistest.EachMaster(ctx, f.client, kill); err != nil {
			t.Fatal(err)
		}
		for _, ten := range tenants { // most likely before the hub dials again
			upsert(t, st, ten, "k", "v", time.Hour)
		}
		for _, sub := range subs {
			expectVersions(t, sub, v, v)
		}
	}
}

// Junk in the tenant's stream that the pump cannot decode is skipped: the reader gets an
// overflow past it (issue 11), not a silent wait. (Before the merge of the corrupt branch the
// pump failed on it, and the reader got ErrFeed.)
func TestFeedJunkMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "junk"
	sub := subscribe(t, st, ten, nil)
	e := upsert(t, st, ten, "k", "v", time.Hour)
	expectVersions(t, sub, 1, 1)
	keys := st.keys(ten)
	if err := f.client.XAdd(ctx, &redis.XAddArgs{Stream: keys[keyEvents], ID: "2-0", Values: []any{"junk", "1"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.client.HSet(ctx, keys[keyState], metaSeq, 2).Err(); err != nil {
		t.Fatal(err)
	}
	// The notice a write of version 2 would publish.
	epoch := sub.Start().Epoch
	if err := f.client.Publish(ctx, channel(keys), fmt.Sprintf("%s 2 %d", epoch, e.ExpiresAt-e.UpdatedAt)).Err(); err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub)
	if want := (backend.Cursor{Epoch: epoch, Seq: 2}); ev.Kind != backend.EventOverflow || ev.FirstAvailable != want {
		t.Fatalf("next: %+v, want an overflow to %v", ev, want)
	}
	upsert(t, st, ten, "k", "w", time.Hour)
	expectVersions(t, sub, 3, 3)
}

// A pump whose reads keep failing with an error no retry fixes (here: its tick, on a junk
// member of the expiry set that is due) gives its readers, which have nothing else to read, an
// error wrapping ErrFeed after about two seconds, rather than a silent wait.
func TestFeedErrorMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "junk"
	sub := subscribe(t, st, ten, nil)
	upsert(t, st, ten, "k", "v", time.Hour)
	expectVersions(t, sub, 1, 1)
	keys := st.keys(ten)
	if err := f.client.ZAdd(ctx, keys[keyExp], redis.Z{Score: -1, Member: "junk"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.client.HSet(ctx, keys[keyState], metaDue, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The notice of an expiry due now. The pump can fail for the first time before Publish
	// returns here, so the start is taken before it.
	start := time.Now()
	if err := f.client.Publish(ctx, channel(keys), sub.Start().Epoch+" 1 0").Err(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, failAfter+eventWait)
	defer cancel()
	ev, err := sub.Next(cctx)
	if !errors.Is(err, ErrFeed) || !errors.Is(err, backend.ErrCorrupt) {
		t.Fatalf("next: %+v, %v; want an error wrapping ErrFeed and ErrCorrupt", ev, err)
	}
	if want := strings.TrimSuffix(keys[keyState], "state") + "*"; !strings.Contains(err.Error(), want) {
		t.Errorf("next: %v; want it to name the tenant's keys, %s", err, want)
	}
	if d := time.Since(start); d < failAfter {
		t.Errorf("error after %v, want after %v of failures", d, failAfter)
	}
	// Without the junk, the reader reads on.
	if err := f.client.ZRem(ctx, keys[keyExp], "junk").Err(); err != nil {
		t.Fatal(err)
	}
	upsert(t, st, ten, "k", "w", time.Hour)
	expectVersions(t, sub, 2, 2)
}

// A cluster's master that dies (its connections refused) and whose replica takes over is found
// by the first call that fails on it: the backend has the cluster client reload its slots at
// once, not at its ClusterStateReloadInterval (an hour here, 60 s by default), so the writes
// go to the new master, and a reader opened before hears of it. Two miniredis servers stand
// in for the master and the replica, which lacked the tenant (its epoch is new): the map of
// the slots is the test's.
func TestClusterMasterLostMiniredis(t *testing.T) {
	master, replica := miniredis.RunT(t), miniredis.RunT(t)
	var owner atomic.Value // the address that serves every slot
	owner.Store(master.Addr())
	var loads atomic.Int64
	client := redis.NewClusterClient(&redis.ClusterOptions{
		ClusterSlots: func(context.Context) ([]redis.ClusterSlot, error) {
			loads.Add(1)
			return []redis.ClusterSlot{{Start: 0, End: 16383, Nodes: []redis.ClusterNode{{Addr: owner.Load().(string)}}}}, nil
		},
		ClusterStateReloadInterval: time.Hour,
	})
	b := New(client, WithPollInterval(time.Hour)) // no poll finds it: the failed calls must
	t.Cleanup(func() {
		b.Close()
		client.Close()
	})
	st, err := b.Open("test", backend.Limits{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := upsert(t, st, "room", "a", "1", time.Hour)
	sub := subscribe(t, st, "room", &backend.Cursor{Epoch: before.Epoch, Seq: before.Version})

	master.Close()
	owner.Store(replica.Addr())
	loaded := loads.Load()
	deadline := time.Now().Add(eventWait)
	var after backend.Entry
	for {
		e, err := st.Upsert(ctx, "room", backend.UpsertRequest{Key: "b", Value: []byte("2"), TTL: time.Hour})
		if err == nil {
			after = e
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes still fail %v after the master was lost (%d loads of the slots since): %v", eventWait, loads.Load()-loaded, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if loads.Load() == loaded {
		t.Fatal("the write succeeded with no load of the slots")
	}
	if after.Epoch == before.Epoch || !replica.Exists(st.(*store).keys("room")[keyState]) {
		t.Fatalf("the write after the loss has epoch %s (before %s): not on the new master", after.Epoch, before.Epoch)
	}
	if ev := next(t, sub); ev.Kind != backend.EventOverflow || ev.FirstAvailable.Epoch != after.Epoch {
		t.Fatalf("the reader got %+v after the failover, want an overflow into epoch %s", ev, after.Epoch)
	}
}
