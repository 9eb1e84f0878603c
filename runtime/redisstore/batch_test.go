package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// applyBatch applies ops as one batch, as concurrent writes would be.
func applyBatch(st *store, tenant string, ops ...writeOp) []*writeCall {
	batch := make([]*writeCall, len(ops))
	for i, op := range ops {
		batch[i] = &writeCall{ctx: context.Background(), req: op, done: make(chan struct{})}
	}
	st.apply(tenant, batch)
	return batch
}

// One batch behaves as its writes one after the other: the same key twice, conditions that see
// the batch's own writes, capacity counted across the batch (a remove frees room), touches,
// quiet ones, and a key removed and written again within the batch.
func TestBatchInOrderMiniredis(t *testing.T) { testBatchInOrder(t, newMini(t)) }
func TestBatchInOrderRedis(t *testing.T)     { testBatchInOrder(t, newReal(t)) }

func testBatchInOrder(t *testing.T, f fixture) {
	st, ten := f.open(t, backend.Limits{MaxEntries: 2}), "batch"
	sub := subscribe(t, st, ten, nil)
	up := func(key, value string, cond backend.CondKind) writeOp {
		return writeOp{code: opUpsert, key: key, value: []byte(value), ttl: time.Hour, cond: backend.Condition{Kind: cond}}
	}
	op := func(code, key string) writeOp { return writeOp{code: code, key: key, ttl: 2 * time.Hour} }
	calls := applyBatch(st, ten,
		up("a", "1", backend.CondIfNew),
		up("a", "2", backend.CondIfNew),    // conflict: a is live now
		up("a", "3", backend.CondIfExists), // version 2, CreatedAt of the first
		up("b", "1", backend.CondNone),
		up("c", "1", backend.CondNone), // capacity
		op(opTouch, "a"),
		op(opTouchQuiet, "b"), // still version 3
		op(opRemove, "b"),
		up("c", "1", backend.CondNone), // room again
		op(opRemove, "c"),
		up("c", "2", backend.CondIfNew), // removed within the batch: new again
		op(opRemove, "x"),               // not live
		op(opTouch, "x"),                // not live
	)
	want := []struct {
		ok      bool
		version uint64
		err     error
	}{
		{true, 1, nil}, {false, 0, backend.ErrConflict}, {true, 2, nil}, {true, 3, nil}, {false, 0, backend.ErrCapacity},
		{true, 4, nil}, {true, 3, nil}, {true, 5, nil}, {true, 6, nil}, {true, 7, nil}, {true, 8, nil},
		{false, 0, nil}, {false, 0, nil},
	}
	for i, c := range calls {
		if c.res.ok != want[i].ok || c.res.version != want[i].version || !errors.Is(c.res.err, want[i].err) {
			t.Errorf("write %d (%s %s): %+v; want ok %v, version %d, err %v", i, c.req.code, c.req.key, c.res, want[i].ok, want[i].version, want[i].err)
		}
	}
	if calls[2].res.createdAt != calls[0].res.createdAt || calls[5].res.createdAt != calls[0].res.createdAt {
		t.Errorf("CreatedAt changed within the batch")
	}
	if calls[6].res.expiresAt != calls[6].res.updatedAt+(2*time.Hour).Milliseconds() || calls[6].res.updatedAt != calls[3].res.updatedAt {
		t.Errorf("quiet touch: %+v, want the expiry moved and UpdatedAt kept", calls[6].res)
	}
	snap, err := st.Snapshot(context.Background(), ten, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Entries) != 2 || snap.Cursor.Seq != 8 ||
		snap.Entries[0].Key != "a" || string(snap.Entries[0].Value) != "3" || snap.Entries[0].Version != 4 ||
		snap.Entries[1].Key != "c" || string(snap.Entries[1].Value) != "2" || snap.Entries[1].Version != 8 {
		t.Fatalf("snapshot after the batch: %+v", snap)
	}
	kinds := []backend.EventKind{backend.EventUpsert, backend.EventUpsert, backend.EventUpsert, backend.EventTouch,
		backend.EventDelete, backend.EventUpsert, backend.EventDelete, backend.EventUpsert}
	for i, kind := range kinds {
		if ev := next(t, sub); ev.Kind != kind || ev.Version != uint64(i+1) {
			t.Fatalf("event %d: %+v, want %v version %d", i, ev, kind, i+1)
		}
	}
}

func TestConcurrentUpsertsMiniredis(t *testing.T) { testConcurrentUpserts(t, newMini(t)) }
func TestConcurrentUpsertsRedis(t *testing.T)     { testConcurrentUpserts(t, newReal(t)) }
func TestConcurrentUpsertsCluster(t *testing.T)   { testConcurrentUpserts(t, newCluster(t)) }

// Concurrent upserts, batched or not, each get their own version, and readers see them all in
// version order.
func testConcurrentUpserts(t *testing.T, f fixture) {
	const writers, each = 16, 20
	st, ten := f.open(t, backend.Limits{}), "concurrent"
	sub := subscribe(t, st, ten, nil)
	versions := make(chan uint64, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e, err := st.Upsert(context.Background(), ten, backend.UpsertRequest{Key: fmt.Sprint("k", (w+i)%5), Value: []byte("v"), TTL: time.Hour})
				if err != nil {
					t.Error(err)
					return
				}
				versions <- e.Version
			}
		})
	}
	wg.Wait()
	close(versions)
	seen := make(map[uint64]bool)
	for v := range versions {
		if seen[v] || v < 1 || v > writers*each {
			t.Fatalf("version %d returned twice or out of range", v)
		}
		seen[v] = true
	}
	expectVersions(t, sub, 1, writers*each)
}

func TestConcurrentTenantsMiniredis(t *testing.T) { testConcurrentTenants(t, newMini(t)) }
func TestConcurrentTenantsRedis(t *testing.T)     { testConcurrentTenants(t, newReal(t)) }
func TestConcurrentTenantsCluster(t *testing.T)   { testConcurrentTenants(t, newCluster(t)) }

// Readers opened at once in many tenants, whose reads go in pipelines, and concurrent writes
// to them, which go in pipelines of calls of write.lua when more than pipelineDepth of a node
// are in flight, each get their own reply: every tenant's versions once each, every key holding
// the value and version its last write returned, every reader its tenant's events in order.
// In a cluster, the pipelines are by master.
func testConcurrentTenants(t *testing.T, f fixture) {
	const writers, each, tenants = 32, 20, 40
	ctx := context.Background()
	st := f.open(t, backend.Limits{})
	subs := make([]backend.Subscription, tenants)
	var wg sync.WaitGroup
	for i := range subs {
		wg.Go(func() {
			sub, err := st.Subscribe(ctx, fmt.Sprint("t", i), backend.SubscribeRequest{})
			if err != nil {
				t.Error(err)
				return
			}
			subs[i] = sub
			t.Cleanup(func() { _ = sub.Close() })
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	type write struct{ tenant, key string }
	var mu sync.Mutex
	versions := make(map[string][]uint64)
	last := make(map[write]backend.Entry)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				wr := write{fmt.Sprint("t", (w*each+i)%tenants), fmt.Sprint("k", w)}
				e, err := st.Upsert(ctx, wr.tenant, backend.UpsertRequest{Key: wr.key, Value: []byte(fmt.Sprint(w, ".", i)), TTL: time.Hour})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				versions[wr.tenant] = append(versions[wr.tenant], e.Version)
				last[wr] = e
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for ten, vs := range versions {
		slices.Sort(vs)
		for i, v := range vs {
			if v != uint64(i+1) {
				t.Fatalf("tenant %s: versions %v, want 1 to %d once each", ten, vs, len(vs))
			}
		}
	}
	for i, sub := range subs {
		expectVersions(t, sub, 1, uint64(len(versions[fmt.Sprint("t", i)])))
	}
	for wr, want := range last {
		got, ok, err := st.Get(ctx, wr.tenant, wr.key)
		if err != nil || !ok || got.Version != want.Version || !bytes.Equal(got.Value, want.Value) {
			t.Fatalf("Get(%s, %s) = %q version %d, %v, %v; its last write returned %q version %d", wr.tenant, wr.key, got.Value, got.Version, ok, err, want.Value, want.Version)
		}
	}
	if _, ok := f.client.(*redis.ClusterClient); ok {
		nodes := make(map[*redis.Client]bool)
		for i := range tenants {
			nodes[st.b.node(ctx, st.keys(fmt.Sprint("t", i))[0])] = true
		}
		if len(nodes) < 2 || nodes[nil] {
			t.Fatalf("the tenants' writes go to %d pipelines %v; want one per master", len(nodes), nodes)
		}
	}
}

// Writes that arrive while the most calls of their tenant are in flight wait, whatever their
// kind, and are applied in their order once one ends; then the tenant's queue is forgotten.
func TestWritesWaitForTheCallInFlightMiniredis(t *testing.T) {
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{}), "queued"
	q := &queue[writeOp, writeResult]{flying: st.writes.depth}
	st.writes.mu.Lock()
	st.writes.queues = map[string]*queue[writeOp, writeResult]{ten: q} // the most calls in flight
	st.writes.mu.Unlock()
	ctx := context.Background()
	type result struct {
		version uint64
		ok      bool
		err     error
	}
	ops := []func() result{
		func() result {
			e, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "a", Value: []byte("1"), TTL: time.Hour})
			return result{e.Version, err == nil, err}
		},
		func() result {
			r, err := st.Touch(ctx, ten, backend.TouchRequest{Key: "a", TTL: time.Hour})
			return result{r.Version, r.OK, err}
		},
		func() result {
			r, err := st.Touch(ctx, ten, backend.TouchRequest{Key: "a", TTL: 2 * time.Hour, Quiet: true})
			return result{r.Version, r.OK, err}
		},
		func() result {
			ok, err := st.Remove(ctx, ten, backend.RemoveRequest{Key: "a", Reason: "r"})
			return result{0, ok, err}
		},
		func() result {
			e, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "a", Value: []byte("2"), TTL: time.Hour, Cond: backend.Condition{Kind: backend.CondIfNew}})
			return result{e.Version, err == nil, err}
		},
	}
	results := make([]result, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		wg.Go(func() { results[i] = op() })
		waitPending(t, st, q, i+1) // queued in this order
	}
	st.writes.release(ten, q, 0) // one of them ends
	wg.Wait()
	for range st.writes.depth - 1 {
		st.writes.release(ten, q, 0) // and the others
	}
	want := []result{{1, true, nil}, {2, true, nil}, {2, true, nil}, {0, true, nil}, {4, true, nil}}
	for i := range want {
		if results[i] != want[i] {
			t.Errorf("write %d: %+v, want %+v", i, results[i], want[i])
		}
	}
	// The draining goroutine forgets the queue after its last batch.
	waitFor(t, "the queue to be forgotten", func() bool { return len(st.writes.queues) == 0 && len(q.calls) == 0 }, &st.writes.mu)
}

// A write that finds fewer than writeDepth calls of its tenant in flight, each alone, and none
// waiting, runs at once beside them, on its caller's goroutine; the tenant's queue stays while
// a call is in flight, and is forgotten when the last ends.
func TestWriteRunsBesideTheCallInFlightMiniredis(t *testing.T) {
	if writeDepth < 2 {
		t.Fatalf("writeDepth %d: a write never runs beside another", writeDepth)
	}
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{}), "beside"
	q := &queue[writeOp, writeResult]{flying: writeDepth - 1, sending: writeDepth - 1}
	st.writes.mu.Lock()
	st.writes.queues = map[string]*queue[writeOp, writeResult]{ten: q} // calls alone in flight, one place left
	st.writes.mu.Unlock()
	e, err := st.Upsert(context.Background(), ten, backend.UpsertRequest{Key: "a", Value: []byte("1"), TTL: time.Hour})
	if err != nil || e.Version != 1 {
		t.Fatalf("upsert beside the calls in flight: version %d, %v; want 1, nil", e.Version, err)
	}
	st.writes.mu.Lock()
	flying, kept := q.flying, st.writes.queues[ten] == q
	st.writes.mu.Unlock()
	if flying != writeDepth-1 || !kept {
		t.Fatalf("after the upsert: %d in flight, queue kept %v; want %d, true", flying, kept, writeDepth-1)
	}
	for range writeDepth - 1 {
		st.writes.release(ten, q, 1)
	}
	st.writes.mu.Lock()
	defer st.writes.mu.Unlock()
	if len(st.writes.queues) != 0 {
		t.Fatalf("%d queues left behind", len(st.writes.queues))
	}
}

// waitPending waits until n writes wait in q.
func waitPending(t *testing.T, st *store, q *queue[writeOp, writeResult], n int) {
	t.Helper()
	waitFor(t, fmt.Sprint(n, " writes to wait"), func() bool { return len(q.calls) >= n }, &st.writes.mu)
}

// waitFor waits until cond, called with mu held, holds, for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool, mu *sync.Mutex) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		ok := cond()
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 10 s", what)
		}
	}
}

// TestBatchContext checks that the context of a batch's call keeps the first call's values and
// ends only when the context of every call of the batch has ended. It runs in a synctest
// bubble: synctest.Wait lets every AfterFunc that a cancel started finish before each check.
func TestBatchContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type key struct{}
		first := context.WithValue(context.Background(), key{}, "first")
		ctxs := make([]context.Context, 3)
		cancels := make([]context.CancelFunc, 3)
		ctxs[0], cancels[0] = context.WithCancel(first)
		ctxs[1], cancels[1] = context.WithCancel(context.Background())
		ctxs[2], cancels[2] = context.WithCancel(context.Background())
		calls := make([]*writeCall, len(ctxs))
		for i := range calls {
			calls[i] = &writeCall{ctx: ctxs[i]}
		}
		ctx, done := batchContext(calls)
		defer done()
		if ctx.Value(key{}) != "first" {
			t.Errorf("batch context's value %v, want the first call's", ctx.Value(key{}))
		}
		cancels[0]()
		cancels[2]()
		synctest.Wait()
		if ctx.Err() != nil {
			t.Fatal("batch context ended while a call still waits")
		}
		cancels[1]()
		synctest.Wait()
		if ctx.Err() == nil {
			t.Fatal("batch context did not end when every call's context had")
		}
	})
}

// Writes of different tenants that arrive while the most calls of write.lua are in flight wait,
// and go in one pipeline when one ends, each with its own reply; in the second round the
// server lost its scripts meanwhile, and of the calls it refused before they ran the first is
// run again alone, which loads the script, and the others in one more pipeline. The node's
// queue is kept, idle, between rounds.
func TestScriptPipelineMiniredis(t *testing.T) {
	f := newMini(t)
	st := f.open(t, backend.Limits{})
	ctx := context.Background()
	upsert(t, st, "warm", "k", "v", time.Hour) // the script cached: the pipeline sends EVALSHA
	sends := &sendCounter{}
	f.client.AddHook(sends)
	q := new(queue[[]any, scriptRes])
	sb := &st.b.scriptCalls
	sb.mu.Lock()
	sb.queues = map[*redis.Client]*queue[[]any, scriptRes]{nil: q}
	sb.mu.Unlock()
	var batches []int
	batch := sb.batch
	sb.batch = func(k *redis.Client, calls []*scriptCall) {
		batches = append(batches, len(calls)) // one drain at a time here
		batch(k, calls)
	}
	const n = 5
	for round, flush := range []bool{false, true} {
		sb.mu.Lock()
		q.flying = pipelineDepth // the most calls in flight
		sb.mu.Unlock()
		batches = nil
		entries := make([]backend.Entry, n)
		errs := make([]error, n)
		value := func(i int) string { return fmt.Sprint(round, ".", i) }
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				entries[i], errs[i] = st.Upsert(ctx, fmt.Sprint("t", i), backend.UpsertRequest{Key: "k", Value: []byte(value(i)), TTL: time.Hour})
			})
		}
		waitFor(t, "the writes to wait", func() bool { return len(q.calls) == n }, &sb.mu)
		if flush {
			if err := f.client.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		sends.n.Store(0)
		sb.release(nil, q, 0)
		wg.Wait()
		// The pipeline; after the flush, the first call alone (EVALSHA, refused, and EVAL) and
		// the others in one more pipeline.
		if got, want := sends.n.Swap(0), map[bool]int64{false: 1, true: 4}[flush]; got != want {
			t.Errorf("round %d: %d script sends, want %d", round, got, want)
		}
		for i := range n {
			if errs[i] != nil || entries[i].Version != uint64(round+1) || string(entries[i].Value) != value(i) {
				t.Errorf("round %d, upsert %d: %q version %d, %v; want %q version %d", round, i, entries[i].Value, entries[i].Version, errs[i], value(i), round+1)
			}
			e, ok, err := st.Get(ctx, fmt.Sprint("t", i), "k")
			if err != nil || !ok || string(e.Value) != value(i) || e.Version != uint64(round+1) {
				t.Errorf("round %d, get %d: %q version %d, %v, %v", round, i, e.Value, e.Version, ok, err)
			}
		}
		if len(batches) != 1 || batches[0] != n {
			t.Errorf("round %d: batches %v, want one of %d", round, batches, n)
		}
		for range pipelineDepth - 1 {
			sb.release(nil, q, 0)
		}
		waitFor(t, "the node's queue to be idle and kept", func() bool {
			return q.flying == 0 && len(q.calls) == 0 && len(sb.queues) == 1 && sb.queues[nil] == q
		}, &sb.mu)
	}
}

// A TouchMany goes in groups of up to maxBatch touches, each one script call, one after the
// other, in the order of its keys, and ends at the first group that fails.
func TestTouchManyGroupsMiniredis(t *testing.T) {
	rec := &recorder{}
	f := newMini(t, WithObserver(rec))
	st, ten := f.open(t, backend.Limits{}), "groups"
	keys := make([]string, 2*maxBatch+2)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
		upsert(t, st, ten, keys[i], "v", time.Hour)
	}
	sub := subscribe(t, st, ten, nil)
	for _, n := range []int{maxBatch, maxBatch + 1, 2*maxBatch + 2} {
		batches, writes := rec.count("batches test/"+ten), rec.count("writes test/"+ten)
		res, err := st.TouchMany(context.Background(), ten, backend.TouchManyRequest{Keys: keys[:n], TTL: time.Hour})
		if err != nil || len(res) != n {
			t.Fatalf("TouchMany of %d keys: %d results, %v", n, len(res), err)
		}
		want := (n + maxBatch - 1) / maxBatch
		if b, w := rec.count("batches test/"+ten)-batches, rec.count("writes test/"+ten)-writes; b != want || w != n {
			t.Errorf("TouchMany of %d keys: %d batches of %d writes, want %d of %d", n, b, w, want, n)
		}
		for i := range n {
			ev := next(t, sub)
			if ev.Kind != backend.EventTouch || ev.Key != keys[i] || ev.Version != res[i].Version {
				t.Fatalf("TouchMany of %d keys: event %+v for touch %d (%+v)", n, ev, i, res[i])
			}
		}
	}

	// A group that fails ends the call: the groups after it are not sent.
	batches := rec.count("batches test/" + ten)
	f.mini.SetError("ERR boom")
	res, err := st.TouchMany(context.Background(), ten, backend.TouchManyRequest{Keys: keys, TTL: time.Hour})
	f.mini.SetError("")
	if res != nil || err == nil || !strings.Contains(err.Error(), `touch "k0"`) {
		t.Errorf("TouchMany on a failing server: %v, %v; want nil and the error of the first key", res, err)
	}
	if b := rec.count("batches test/"+ten) - batches; b != 1 {
		t.Errorf("TouchMany on a failing server sent %d batches, want 1", b)
	}
}

// sendCounter is a redis.Hook that counts the sends of script calls: a command alone, or a
// pipeline of them.
type sendCounter struct{ n atomic.Int64 }

func (c *sendCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *sendCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if scriptOf(cmd.Args()) != nil {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *sendCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && scriptOf(cmds[0].Args()) != nil {
			c.n.Add(1)
		}
		return next(ctx, cmds)
	}
}
