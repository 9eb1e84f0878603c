package redisstore

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// recorder is a backend.Observer that counts what it is told, by method and argument.
type recorder struct {
	mu     sync.Mutex
	counts map[string]int
	errs   []error
}

func (r *recorder) add(what string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	r.counts[what] += n
}

func (r *recorder) count(what string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[what]
}

func (r *recorder) Delivered(store, tenant string, kind backend.EventKind, age time.Duration) {
	r.add("delivered "+store+"/"+tenant+" "+kind.String(), 1)
}
func (r *recorder) CatchUp(store, tenant string) { r.add("catchup "+store+"/"+tenant, 1) }
func (r *recorder) WriteBatch(store, tenant string, n int) {
	r.add("batches "+store+"/"+tenant, 1)
	r.add("writes "+store+"/"+tenant, n)
}
func (r *recorder) Expired(store, tenant string, n int) { r.add("expired "+store+"/"+tenant, n) }
func (r *recorder) Readers(store, tenant string, delta int) {
	r.add("readers "+store+"/"+tenant, delta)
}
func (r *recorder) Refused(store, tenant string, err error) {
	reason := "other"
	switch {
	case errors.Is(err, backend.ErrCapacity):
		reason = "capacity"
	case errors.Is(err, backend.ErrConflict):
		reason = "conflict"
	}
	r.add("refused "+store+"/"+tenant+" "+reason, 1)
}
func (r *recorder) StateLost(store, tenant string) { r.add("lost "+store+"/"+tenant, 1) }
func (r *recorder) Error(store, tenant, call string, err error) {
	r.add("error "+store+"/"+tenant+" "+call, 1)
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func TestObserverMiniredis(t *testing.T) {
	rec := &recorder{}
	f := newMini(t, WithReaderBuffer(4), WithObserver(rec))
	st, ten := f.open(t, backend.Limits{}), "obs"
	sub := subscribe(t, st, ten, nil)
	// Ten lone writes, more than the reader buffers: it catches up from Redis.
	for range 10 {
		upsert(t, st, ten, "k", "v", time.Hour)
	}
	expectVersions(t, sub, 1, 10)
	if got := rec.count("delivered test/obs upsert"); got != 10 {
		t.Errorf("%d upserts delivered, want 10", got)
	}
	if got := rec.count("catchup test/obs"); got < 1 {
		t.Errorf("%d catch-up reads, want some: the reader's buffer holds 4 events of 10", got)
	}
	if b, w := rec.count("batches test/obs"), rec.count("writes test/obs"); b != 10 || w != 10 {
		t.Errorf("%d batches of %d writes, want 10 of 10", b, w)
	}
	applyBatch(st, ten, writeOp{code: opUpsert, key: "a", value: []byte("1"), ttl: time.Hour},
		writeOp{code: opUpsert, key: "b", value: []byte("1"), ttl: time.Hour})
	if b, w := rec.count("batches test/obs"), rec.count("writes test/obs"); b != 11 || w != 12 {
		t.Errorf("%d batches of %d writes, want 11 of 12 after a batch of 2", b, w)
	}
	expectVersions(t, sub, 11, 12)

	// The pump's tick expires a due entry and says so.
	e := upsert(t, st, ten, "short", "v", 10*time.Second)
	expectVersions(t, sub, 13, 13)
	f.shift(time.Duration(e.ExpiresAt-e.UpdatedAt) * time.Millisecond)
	if ev := next(t, sub); ev.Kind != backend.EventExpire {
		t.Fatalf("event %+v, want the expiry", ev)
	}
	if got := rec.count("expired test/obs"); got != 1 {
		t.Errorf("%d expiries, want 1", got)
	}
	if got := rec.count("delivered test/obs expire"); got != 1 {
		t.Errorf("%d expire events delivered, want 1", got)
	}

	// A failed script call is reported with its name; one whose context ended is not.
	f.mini.SetError("ERR boom")
	if _, _, err := st.Get(context.Background(), ten, "k"); err == nil {
		t.Fatal("Get succeeded on a failing server")
	}
	f.mini.SetError("")
	if got := rec.count("error test/obs get"); got != 1 {
		t.Errorf("%d get errors, want 1", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := st.Get(ctx, ten, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	if got := rec.count("error test/obs get"); got != 1 {
		t.Errorf("%d get errors after a cancelled Get, want still 1", got)
	}
	rec.mu.Lock()
	for _, err := range rec.errs {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("observed error %v: a context's end is not a failure", err)
		}
	}
	rec.mu.Unlock()

	// An overflow is delivered as such.
	old := backend.Cursor{Epoch: backend.NewEpoch(time.Now()), Seq: 1}
	sub2 := subscribe(t, st, ten, &old)
	if ev := next(t, sub2); ev.Kind != backend.EventOverflow {
		t.Fatalf("event %+v, want an overflow", ev)
	}
	if got := rec.count("delivered test/obs overflow"); got != 1 {
		t.Errorf("%d overflows delivered, want 1", got)
	}

	// The open readers: one each Subscribe, less one each first Close.
	if got := rec.count("readers test/obs"); got != 2 {
		t.Errorf("%d readers open, want 2", got)
	}
	sub2.Close()
	sub2.Close()
	if got := rec.count("readers test/obs"); got != 1 {
		t.Errorf("%d readers open after a Close, want 1", got)
	}
	// Closing the backend ends the reader left open and counts it out; its Close after that
	// counts nothing.
	f.b.Close()
	if got := rec.count("readers test/obs"); got != 0 {
		t.Errorf("%d readers open after the backend's Close, want 0", got)
	}
	sub.Close()
	if got := rec.count("readers test/obs"); got != 0 {
		t.Errorf("%d readers open after the backend's Close and the reader's, want 0", got)
	}
}

// The writes that a tenant's state refuses are reported, by reason, alone or in a batch; a
// touch or remove of a key that is not live is no refusal.
func TestObserverRefusedMiniredis(t *testing.T) {
	rec := &recorder{}
	f := newMini(t, WithObserver(rec))
	st, ten := f.open(t, backend.Limits{MaxEntries: 2}), "full"
	ctx := context.Background()
	upsert(t, st, ten, "a", "1", time.Hour)
	if _, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "a", Value: []byte("2"), TTL: time.Hour,
		Cond: backend.Condition{Kind: backend.CondIfNew}}); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("IfNew upsert of a live key: %v, want a conflict", err)
	}
	if r, err := st.Touch(ctx, ten, backend.TouchRequest{Key: "gone", TTL: time.Hour}); err != nil || r.OK {
		t.Fatalf("touch of a missing key: %+v, %v", r, err)
	}
	if ok, err := st.Remove(ctx, ten, backend.RemoveRequest{Key: "gone"}); err != nil || ok {
		t.Fatalf("remove of a missing key: %v, %v", ok, err)
	}
	// A batch of an upsert that fills the tenant, one refused for capacity, and a touch whose
	// condition fails.
	calls := applyBatch(st, ten,
		writeOp{code: opUpsert, key: "b", value: []byte("1"), ttl: time.Hour},
		writeOp{code: opUpsert, key: "c", value: []byte("1"), ttl: time.Hour},
		writeOp{code: opTouch, key: "a", ttl: time.Hour, cond: backend.Condition{Kind: backend.CondIfVersion, Version: 9}})
	for i, want := range []error{nil, backend.ErrCapacity, backend.ErrConflict} {
		if err := calls[i].res.err; !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("write %d of the batch: %v, want %v", i, err, want)
		}
	}
	if got := rec.count("refused test/full conflict"); got != 2 {
		t.Errorf("%d conflicts reported, want 2", got)
	}
	if got := rec.count("refused test/full capacity"); got != 1 {
		t.Errorf("%d refusals for capacity reported, want 1", got)
	}
	if got := rec.count("refused test/full other"); got != 0 {
		t.Errorf("%d other refusals reported, want none", got)
	}
}

// A write that finds its tenant in a new epoch sooner after this backend's last write than the
// state could have expired reports the state lost, once, with no reader open; a tenant made
// anew after it was idle past its retention is not (on miniredis, whose clock the test moves).
// The state is lost by a DEL of the tenant's keys, as an eviction or a FLUSHALL would.
func TestObserverStateLostMiniredis(t *testing.T) {
	testObserverStateLost(t, newMini(t, WithObserver(&recorder{})))
}
func TestObserverStateLostRedis(t *testing.T) {
	testObserverStateLost(t, newReal(t, WithObserver(&recorder{})))
}

func testObserverStateLost(t *testing.T, f fixture) {
	rec := f.b.obs.(*recorder)
	retention := time.Minute
	st := f.open(t, backend.Limits{EventRetention: retention})
	lose := func(tenant string) {
		t.Helper()
		if err := f.client.Del(context.Background(), st.keys(tenant)...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	first := upsert(t, st, "lost", "a", "1", time.Hour)
	lose("lost")
	var again []backend.Entry
	for range 2 {
		again = append(again, upsert(t, st, "lost", "a", "2", time.Hour))
	}
	if again[0].Epoch == first.Epoch || again[1].Epoch != again[0].Epoch {
		t.Fatalf("epochs %q, %q after the keys were deleted, before %q: want one new epoch", again[0].Epoch, again[1].Epoch, first.Epoch)
	}
	if got := rec.count("lost test/lost"); got != 1 {
		t.Errorf("state lost reported %d times, want once", got)
	}
	if f.real {
		return
	}
	// "idle" is written, then left past its retention: its entry expires after a second, its
	// keys a retention (and a quarter) later; its next write makes a new epoch, not a loss.
	upsert(t, st, "idle", "a", "1", time.Second)
	f.shift(2 * retention)
	if e := upsert(t, st, "idle", "a", "2", time.Second); e.Version != 1 {
		t.Fatalf("write after two retentions idle: version %d, want 1 of a new epoch", e.Version)
	}
	if got := rec.count("lost test/idle"); got != 0 {
		t.Errorf("state lost reported %d times for a tenant idle past its retention, want none", got)
	}
}

// The poll of the watched tenants and the pub/sub connection serve every store and tenant of
// the backend: their failures are reported with neither, and so seen even when no reader or
// write sees one.
func TestObserverBackendWideMiniredis(t *testing.T) {
	rec := &recorder{}
	f := newMini(t, WithObserver(rec)) // a poll every 50 ms
	st := f.open(t, backend.Limits{})
	subscribe(t, st, "obs", nil)
	waitMore := func(what string, than int) {
		t.Helper()
		for deadline := time.Now().Add(eventWait); rec.count(what) <= than; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no more %q reported in %v", what, eventWait)
			}
		}
	}
	f.mini.SetError("ERR boom")
	waitMore("error / poll", 0)
	f.mini.SetError("") // the pub/sub connection's pings may have failed too
	pubsub, poll := rec.count("error / pubsub"), rec.count("error / poll")
	f.mini.Close() // the pub/sub connection is lost, and the server gone for the polls
	waitMore("error / pubsub", pubsub)
	waitMore("error / poll", poll)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, err := range rec.errs {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("observed error %v: a context's end is not a failure", err)
		}
	}
}

// A server that may evict keys is reported once a store is opened (every key of a tenant has
// a TTL, so an eviction policy may take one and not the others); one at noeviction is not.
func TestEvictionPolicyRedis(t *testing.T)   { testEvictionPolicy(t, newReal(t)) }
func TestEvictionPolicyCluster(t *testing.T) { testEvictionPolicy(t, newCluster(t)) }

// A server that cannot be reached when the first store opens is checked once it is up, also
// when that takes longer than a try (the check of before gave up, and never reported it).
func TestEvictionPolicyLaterRedis(t *testing.T) {
	if os.Getenv(redistest.EnvAddr) == "" {
		t.Skipf("set %s to run the real-server tests (this one starts a redis-server of its own)", redistest.EnvAddr)
	}
	srv := redistest.NewServer(t)
	srv.Args = []string{"--maxmemory-policy", "allkeys-lru"}
	t.Cleanup(srv.Stop)
	rec := &recorder{}
	b := New(redis.NewClient(&redis.Options{Addr: srv.Addr()}), WithObserver(rec))
	t.Cleanup(func() { b.Close() })
	if _, err := b.Open("later", backend.Limits{}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.evictionChecked:
		t.Fatal("the check ended while the server was down")
	case <-time.After(3 * time.Second): // the check of before gave up after 1.7 s here
	}
	srv.Start()
	select {
	case <-b.evictionChecked:
	case <-time.After(30 * time.Second):
		t.Fatal("the server was not checked once up")
	}
	if n := rec.count("error / config"); n != 1 {
		t.Fatalf("%d config errors with maxmemory-policy allkeys-lru, want 1", n)
	}
}

func testEvictionPolicy(t *testing.T, f fixture) {
	ctx := context.Background()
	// setPolicy sets the policy of every master.
	setPolicy := func(ctx context.Context, policy string) error {
		set := func(ctx context.Context, c *redis.Client) error {
			return c.ConfigSet(ctx, "maxmemory-policy", policy).Err()
		}
		if c, ok := f.client.(*redis.ClusterClient); ok {
			return c.ForEachMaster(ctx, set)
		}
		return set(ctx, f.client.(*redis.Client))
	}
	if err := setPolicy(ctx, "noeviction"); err != nil {
		t.Fatal(err)
	}
	quiet := &recorder{}
	b := New(f.client, WithKeyPrefix(f.b.prefix), WithObserver(quiet))
	if _, err := b.Open("quiet", backend.Limits{}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	<-b.evictionChecked
	b.Close()
	if n := quiet.count("error / config"); n != 0 {
		t.Errorf("%d config errors at noeviction, want 0", n)
	}

	if err := setPolicy(ctx, "volatile-lru"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = setPolicy(context.Background(), "noeviction") })
	rec := &recorder{}
	b = New(f.client, WithKeyPrefix(f.b.prefix), WithObserver(rec))
	if _, err := b.Open("evicting", backend.Limits{}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	<-b.evictionChecked
	b.Close()
	masters := 1
	if c, ok := f.client.(*redis.ClusterClient); ok {
		masters = len(c.ClusterShards(ctx).Val())
	}
	if n := rec.count("error / config"); n != masters {
		t.Fatalf("%d config errors with maxmemory-policy volatile-lru, want one for each of %d masters", n, masters)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if msg := rec.errs[0].Error(); !strings.Contains(msg, "volatile-lru") || !strings.Contains(msg, "noeviction") {
		t.Errorf("config error %q, want it to name the policy and noeviction", msg)
	}
}

// On a real server: deliveries, lone writes, and an expiry by the pump's tick (tick.lua counts
// what it expired).
func TestObserverRedis(t *testing.T) {
	rec := &recorder{}
	f := newReal(t, WithObserver(rec))
	st, ten := f.open(t, backend.Limits{}), "obs"
	sub := subscribe(t, st, ten, nil)
	upsert(t, st, ten, "long", "v", time.Hour)
	upsert(t, st, ten, "short", "v", 300*time.Millisecond)
	expectVersions(t, sub, 1, 2)
	if ev := next(t, sub); ev.Kind != backend.EventExpire || ev.Key != "short" {
		t.Fatalf("event %+v, want the expiry of short", ev)
	}
	for what, want := range map[string]int{
		"delivered test/obs upsert": 2,
		"delivered test/obs expire": 1,
		"batches test/obs":          2,
		"writes test/obs":           2,
		"expired test/obs":          1,
	} {
		if got := rec.count(what); got != want {
			t.Errorf("%s: %d, want %d", what, got, want)
		}
	}
}

// A quiet touch is a write too: it keeps the tenant's keys alive a retention from its time, not
// from the entry's UpdatedAt. A state lost while it was kept so (a lock held past the event
// retention, extended by quiet touches) is reported at the next write.
func TestObserverStateLostAfterQuietTouches(t *testing.T) {
	rec := &recorder{}
	f := newMini(t, WithObserver(rec))
	retention := time.Minute
	st := f.open(t, backend.Limits{EventRetention: retention})
	ctx := t.Context()
	first := upsert(t, st, "held", "a", "1", 30*time.Second)
	for range 9 { // 3 minutes, 3 retentions, kept alive by quiet touches only
		f.shift(20 * time.Second)
		r, err := st.Touch(ctx, "held", backend.TouchRequest{Key: "a", TTL: 30 * time.Second, Quiet: true})
		if err != nil || !r.OK {
			t.Fatalf("quiet touch: %+v, %v", r, err)
		}
	}
	f.mini.FlushAll()
	f.shift(time.Second)
	again := upsert(t, st, "held", "a", "2", 30*time.Second)
	if again.Epoch == first.Epoch {
		t.Fatalf("epoch %q after a FLUSHALL, as before", again.Epoch)
	}
	if got := rec.count("lost test/held"); got != 1 {
		t.Errorf("state lost reported %d times for a tenant flushed a second after its last write (a quiet touch), want once", got)
	}
}
