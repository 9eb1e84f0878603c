package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

func TestPayloadBytesMiniredis(t *testing.T) { testPayloadBytes(t, newMini(t)) }
func TestPayloadBytesRedis(t *testing.T)     { testPayloadBytes(t, newReal(t)) }

// Values come back byte for byte from Get, Snapshot and events: no JSON round trip in Lua.
func testPayloadBytes(t *testing.T, f fixture) {
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "bytes"
	sub := subscribe(t, st, ten, nil)
	values := []string{`[]`, `{}`, `1.0000000000000002`, `"a|b"`, "\x00\xff|1|2|3|\n", ``}
	for i, v := range values {
		key := fmt.Sprint("k", i)
		upsert(t, st, ten, key, v, time.Hour)
		got, ok, err := st.Get(ctx, ten, key)
		if err != nil || !ok || !bytes.Equal(got.Value, []byte(v)) {
			t.Errorf("get %q: %q %v %v, want %q", key, got.Value, ok, err, v)
		}
		if ev := next(t, sub); !bytes.Equal(ev.Value, []byte(v)) || ev.Key != key {
			t.Errorf("event of %q: %q, want %q", key, ev.Value, v)
		}
	}
	snap, err := st.Snapshot(ctx, ten, "")
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range snap.Entries {
		if !bytes.Equal(e.Value, []byte(values[i])) {
			t.Errorf("snapshot %q: %q, want %q", e.Key, e.Value, values[i])
		}
	}
}

func TestKeysExpireMiniredis(t *testing.T) { testKeysExpire(t, newMini(t)) }
func TestKeysExpireRedis(t *testing.T)     { testKeysExpire(t, newReal(t)) }
func TestKeysExpireCluster(t *testing.T)   { testKeysExpire(t, newCluster(t)) }

// checkPTTL fails t unless the PTTL of key is within [lo, hi] (lo 1: the key has an expiry).
func checkPTTL(t testing.TB, f fixture, key string, lo, hi time.Duration) {
	t.Helper()
	if ttl, err := f.client.PTTL(context.Background(), key).Result(); err != nil || ttl < lo || ttl > hi {
		t.Errorf("PTTL %s = %v, %v; want within [%v, %v]", key, ttl, err, lo, hi)
	}
}

// Every key of a tenant carries a Redis expiry: the state hash and the expiry set the longest
// TTL plus the event retention (with at most a quarter of the retention as slack), and once
// the entry of the longest TTL is removed, that of the longest TTL left; the stream a retention
// after its last event (with the same slack).
func testKeysExpire(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{EventRetention: time.Minute})
	upsert(t, st, "abandoned", "short", "v", time.Second)
	upsert(t, st, "abandoned", "long", "v", time.Hour)
	lo, hi := time.Hour+time.Minute-time.Second, time.Hour+time.Minute+time.Minute/4
	keys := st.keys("abandoned")
	checkPTTL(t, f, keys[keyState], lo, hi)
	checkPTTL(t, f, keys[keyExp], lo, hi)
	checkPTTL(t, f, keys[keyEvents], time.Minute-time.Second, time.Minute+time.Minute/4)
	// Once the entry of the longest TTL is gone, a write brings the keys' expiry back to that
	// of the longest TTL left: an entry written again with a shorter TTL, an entry removed.
	hi = time.Second + time.Minute + time.Minute/4
	for _, shorten := range []func() error{
		func() error {
			_, err := st.Upsert(ctx, "abandoned", backend.UpsertRequest{Key: "long", Value: []byte("v"), TTL: time.Second})
			return err
		},
		func() error {
			_, err := st.Remove(ctx, "abandoned", backend.RemoveRequest{Key: "long"})
			return err
		},
	} {
		upsert(t, st, "abandoned", "long", "v", time.Hour)
		if err := shorten(); err != nil {
			t.Fatal(err)
		}
		for _, key := range keys {
			checkPTTL(t, f, key, 1, hi)
		}
	}

	// A tenant that was only read expires too.
	subscribe(t, st, "read-only", nil).Close()
	checkPTTL(t, f, st.keys("read-only")[keyState], 1, time.Minute+time.Minute/4)
}

func TestKeysExpireAfterLossMiniredis(t *testing.T) { testKeysExpireAfterLoss(t, newMini(t)) }
func TestKeysExpireAfterLossRedis(t *testing.T)     { testKeysExpireAfterLoss(t, newReal(t)) }

// A tenant's expiry set or event stream lost alone (evicted: see the package doc) and made
// again by a write, or the stream by a tick that expires an entry, gets its Redis expiry in
// the same call, not at the tenant's next extension: a tenant left alone after it would keep
// the key for ever.
func testKeysExpireAfterLoss(t *testing.T, f fixture) {
	ctx := context.Background()
	st := f.open(t, backend.Limits{EventRetention: time.Minute})
	check := func(ten string) {
		t.Helper()
		for _, key := range st.keys(ten) {
			if ttl, err := f.client.PTTL(ctx, key).Result(); err != nil || ttl <= 0 {
				t.Errorf("PTTL %s = %v, %v; want > 0", key, ttl, err)
			}
		}
	}
	for _, k := range []int{keyExp, keyEvents} {
		// The write after the loss is an update or a new key; either needs no extension of
		// the tenant's keys.
		for _, key := range []string{"a", "c"} {
			ten := "lost " + keySuffixes[k] + ", then " + key
			upsert(t, st, ten, "a", "v", time.Hour)
			upsert(t, st, ten, "b", "v", time.Hour)
			if err := f.client.Del(ctx, st.keys(ten)[k]).Err(); err != nil {
				t.Fatal(err)
			}
			upsert(t, st, ten, key, "w", time.Hour)
			check(ten)
		}
	}
	if f.mini == nil {
		return // the tick below needs the controllable clock
	}
	ten := "lost events, then a tick"
	upsert(t, st, ten, "short", "v", time.Second)
	upsert(t, st, ten, "long", "v", time.Hour)
	if err := f.client.Del(ctx, st.keys(ten)[keyEvents]).Err(); err != nil {
		t.Fatal(err)
	}
	f.shift(time.Second)
	if r, err := runTick(ctx, f.b.scripts, st.keys(ten), st.limits, ""); err != nil || r.expired != 1 {
		t.Fatalf("tick: %+v, %v; want one entry expired", r, err)
	}
	check(ten)
}

func TestExpirySetRestoredMiniredis(t *testing.T) { testExpirySetRestored(t, newMini(t)) }
func TestExpirySetRestoredRedis(t *testing.T)     { testExpirySetRestored(t, newReal(t)) }

// A tenant's expiry set lost alone (evicted, see the package doc) while its entries stay is
// made again from them by the first call that finds it missing: a write of a new key, an
// update, a tick when an expiry is due. Lost and not made again, the entries would never get
// their expire events, and the MaxEntries check would not count them.
func testExpirySetRestored(t *testing.T, f fixture) {
	ctx := context.Background()
	// lose writes a and b (b with ttl) to a new tenant and deletes its expiry set.
	lose := func(st *store, ten string, ttl time.Duration) (a, b backend.Entry) {
		t.Helper()
		a, b = upsert(t, st, ten, "a", "v", time.Hour), upsert(t, st, ten, "b", "v", ttl)
		if err := f.client.Del(ctx, st.keys(ten)[keyExp]).Err(); err != nil {
			t.Fatal(err)
		}
		return a, b
	}
	// want checks that the expiry set holds exactly the expiries of want, and has a TTL.
	want := func(st *store, ten string, want ...backend.Entry) {
		t.Helper()
		key := st.keys(ten)[keyExp]
		got, err := f.client.ZRangeWithScores(ctx, key, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%s: expiry set %v, want %d members", ten, got, len(want))
		}
		for _, e := range want {
			score, err := f.client.ZScore(ctx, key, e.Key).Result()
			if ms := e.ExpiresAt; err != nil || int64(score) != ms {
				t.Errorf("%s: expiry of %q %v, %v; want %d", ten, e.Key, score, err, ms)
			}
		}
		if ttl, err := f.client.PTTL(ctx, key).Result(); err != nil || ttl <= 0 {
			t.Errorf("%s: PTTL of the expiry set %v, %v; want > 0", ten, ttl, err)
		}
	}
	st := f.open(t, backend.Limits{MaxEntries: 3})

	a, b := lose(st, "new key", time.Hour)
	c := upsert(t, st, "new key", "c", "v", time.Hour)
	want(st, "new key", a, b, c)
	// a and b count again: a fourth key is one too many.
	_, err := st.Upsert(ctx, "new key", backend.UpsertRequest{Key: "d", Value: []byte("v"), TTL: time.Hour})
	if !errors.Is(err, backend.ErrCapacity) {
		t.Errorf("upsert of a fourth key with MaxEntries 3: %v, want ErrCapacity", err)
	}

	_, b = lose(st, "update", time.Hour)
	a = upsert(t, st, "update", "a", "w", 2*time.Hour)
	want(st, "update", a, b)

	// An entry that is junk fails the write of a new key, which would put its expiry back,
	// before the write changes anything.
	lose(st, "junk", time.Hour)
	if err := f.client.HSet(ctx, st.keys("junk")[keyState], entryPrefix+"bad", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Upsert(ctx, "junk", backend.UpsertRequest{Key: "c", Value: []byte("v"), TTL: time.Hour}); !errors.Is(err, backend.ErrCorrupt) {
		t.Errorf("upsert of a new key beside junk, the set lost: %v, want ErrCorrupt", err)
	}
	if _, ok, err := st.Get(ctx, "junk", "c"); ok || err != nil {
		t.Errorf("get c after the failed upsert: %v, %v; want nothing", ok, err)
	}

	if f.mini == nil {
		return // the calls below, after b is due, need the controllable clock
	}
	// A tick, and a write that only removes, when b is due: each puts the set back and
	// expires b, with its event, before anything else. (No reader is open while they run: a
	// reader's pump would tick by itself.)
	a, b = lose(st, "tick", time.Second)
	_, rb := lose(st, "remove", time.Second)
	f.shift(time.Second)
	if r, err := runTick(ctx, f.b.scripts, st.keys("tick"), st.limits, ""); err != nil || r.expired != 1 {
		t.Fatalf("tick: %+v, %v; want b expired", r, err)
	}
	want(st, "tick", a)
	if ev := next(t, subscribe(t, st, "tick", &backend.Cursor{Epoch: b.Epoch, Seq: b.Version})); ev.Kind != backend.EventExpire || ev.Key != "b" {
		t.Errorf("tick: event %+v, want b's expire", ev)
	}
	if ok, err := st.Remove(ctx, "remove", backend.RemoveRequest{Key: "a"}); err != nil || !ok {
		t.Fatalf("remove a: %v, %v", ok, err)
	}
	if got, err := f.client.HExists(ctx, st.keys("remove")[keyState], entryPrefix+"b").Result(); err != nil || got {
		t.Errorf("remove: b still stored after the call: %v, %v", got, err)
	}
	removes := subscribe(t, st, "remove", &backend.Cursor{Epoch: rb.Epoch, Seq: rb.Version})
	for _, w := range []backend.Event{{Kind: backend.EventExpire, Key: "b"}, {Kind: backend.EventDelete, Key: "a"}} {
		if ev := next(t, removes); ev.Kind != w.Kind || ev.Key != w.Key {
			t.Errorf("remove: event %+v, want %v of %s", ev, w.Kind, w.Key)
		}
	}
}

func TestSnapshotMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "snap"
	keys := []string{"b", "a/2", "a/10", "é", "z", "a/1", "\xff"}
	for _, k := range keys {
		upsert(t, st, ten, k, k, time.Hour)
	}
	upsert(t, st, ten, "a/short", "v", time.Second)
	f.shift(time.Second)
	upsert(t, st, ten, "a/late", "v", time.Second) // expires a/short first
	f.shift(time.Second)                           // a/late is due, not reconciled

	snap, err := st.Snapshot(ctx, ten, "")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys) // byte order
	if got := entryKeys(snap.Entries); !slices.Equal(got, keys) {
		t.Fatalf("snapshot keys %q, want %q", got, keys)
	}
	if want := uint64(len(keys) + 3); snap.Cursor.Seq != want {
		t.Fatalf("snapshot cursor %v, want version %d", snap.Cursor, want)
	}
	snap, err = st.Snapshot(ctx, ten, "a/")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := entryKeys(snap.Entries), []string{"a/1", "a/10", "a/2"}; !slices.Equal(got, want) {
		t.Fatalf("snapshot of a/: %q, want %q", got, want)
	}
	if _, ok, _ := st.Get(ctx, ten, "a/late"); ok {
		t.Fatal("Get returned a due entry")
	}
}

func entryKeys(entries []backend.Entry) []string {
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	return keys
}

// Expired entries never count against MaxEntries, reconciled or not.
func TestCapacityMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{MaxEntries: 2}), "cap"
	upsert(t, st, ten, "a", "v", time.Second)
	upsert(t, st, ten, "b", "v", time.Hour)
	_, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "c", Value: []byte("v"), TTL: time.Hour})
	if !errors.Is(err, backend.ErrCapacity) {
		t.Fatalf("third key: %v, want ErrCapacity", err)
	}
	upsert(t, st, ten, "b", "w", time.Hour) // replacing always works
	f.shift(time.Second)
	e := upsert(t, st, ten, "c", "v", time.Hour)
	// a's expiry took version 4, before c's upsert.
	if e.Version != 5 {
		t.Fatalf("upsert of c: version %d, want 5", e.Version)
	}
}

// Events older than the retention are dropped on the next write; a reader after them gets
// an overflow.
func TestRetentionMiniredis(t *testing.T) {
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{EventRetention: time.Minute}), "ret"
	for range 3 {
		upsert(t, st, ten, "k", "v", time.Hour)
	}
	f.shift(time.Minute)
	upsert(t, st, ten, "k", "v", time.Hour)
	if n, err := f.client.XLen(context.Background(), st.keys(ten)[keyEvents]).Result(); err != nil || n != 1 {
		t.Fatalf("stream length %d, %v; want 1", n, err)
	}
	start := backend.Cursor{Epoch: subscribe(t, st, ten, nil).Start().Epoch}
	sub := subscribe(t, st, ten, &start)
	if ev := next(t, sub); ev.Kind != backend.EventOverflow || ev.FirstAvailable.Seq != 3 {
		t.Fatalf("event %+v, want an overflow to version 3", ev)
	}
	expectVersions(t, sub, 4, 4)
}

// A snapshot of 10,000 entries (the default MaxEntries) is complete and sorted.
func TestSnapshot10kRedis(t *testing.T) {
	f := newReal(t)
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "snap10k"
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < 10_000; i += 16 {
				if _, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: fmt.Sprintf("k%05d", i), Value: []byte("{}"), TTL: time.Hour}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	snap, err := st.Snapshot(ctx, ten, "")
	if err != nil || len(snap.Entries) != 10_000 || snap.Cursor.Seq != 10_000 {
		t.Fatalf("snapshot: %d entries, cursor %v, %v", len(snap.Entries), snap.Cursor, err)
	}
	for i, e := range snap.Entries {
		if want := fmt.Sprintf("k%05d", i); e.Key != want {
			t.Fatalf("entry %d is %q, want %q", i, e.Key, want)
		}
	}
}

func TestStreamExpiresIdleMiniredis(t *testing.T) { testStreamExpiresIdle(t, newMini(t)) }
func TestStreamExpiresIdleRedis(t *testing.T)     { testStreamExpiresIdle(t, newReal(t)) }

// A tenant left alone with an entry of a TTL much longer than the event retention keeps its
// entries, not its events: the stream expires a retention after its last event (with a quarter
// of the retention as slack), and each write that adds events keeps it that long. A reader from
// a version whose event is gone gets an overflow; the next write makes the stream again, with
// the next version of the same epoch, which the readers get.
func testStreamExpiresIdle(t *testing.T, f fixture) {
	ctx := context.Background()
	ret := time.Minute
	if f.real {
		ret = time.Second // waited for in real time
	}
	st, ten := f.open(t, backend.Limits{EventRetention: ret}), "idle"
	keys := st.keys(ten)
	first := upsert(t, st, ten, "long", "v", time.Hour)
	f.advance(t, ret/2)
	upsert(t, st, ten, "a", "v", time.Hour) // renews the stream's expiry: a retention from now
	checkPTTL(t, f, keys[keyEvents], 1, ret+ret/4)
	checkPTTL(t, f, keys[keyState], time.Hour, time.Hour+ret+ret/4)

	f.advance(t, ret+ret/2)
	if n, err := f.client.Exists(ctx, keys[keyEvents]).Result(); err != nil || n != 0 {
		t.Fatalf("the stream of a tenant idle for more than its retention: EXISTS %d, %v; want it gone", n, err)
	}
	checkPTTL(t, f, keys[keyState], time.Hour-2*ret, time.Hour+ret+ret/4)
	if e, ok, err := st.Get(ctx, ten, "long"); err != nil || !ok || e.Version != first.Version {
		t.Fatalf("get long: %+v, %v, %v; want version %d", e, ok, err, first.Version)
	}

	after := backend.Cursor{Epoch: first.Epoch, Seq: first.Version}
	if ev := next(t, subscribe(t, st, ten, &after)); ev.Kind != backend.EventOverflow || ev.After != after {
		t.Fatalf("next after %v: %+v, want an overflow", after, ev)
	}
	sub := subscribe(t, st, ten, nil)
	b := upsert(t, st, ten, "b", "v", time.Hour)
	if b.Epoch != first.Epoch || b.Version != 3 {
		t.Fatalf("upsert after the stream expired: version %d of epoch %q, want 3 of %q", b.Version, b.Epoch, first.Epoch)
	}
	if ev := next(t, sub); ev.Kind != backend.EventUpsert || ev.Key != "b" || ev.Version != 3 {
		t.Fatalf("next: %+v, want the upsert of b at version 3", ev)
	}
	if n, err := f.client.XLen(ctx, keys[keyEvents]).Result(); err != nil || n != 1 {
		t.Errorf("XLEN of the stream made again: %d, %v; want 1", n, err)
	}
	checkPTTL(t, f, keys[keyEvents], 1, ret+ret/4)

	if f.mini == nil {
		return // the tick below needs the controllable clock
	}
	// The same with the stream made again by a tick, for the expire event of an entry.
	upsert(t, st, ten, "short", "v", 10*ret)
	if ev := next(t, sub); ev.Kind != backend.EventUpsert || ev.Key != "short" {
		t.Fatalf("next: %+v, want the upsert of short", ev)
	}
	f.advance(t, 2*ret)
	if n, err := f.client.Exists(ctx, keys[keyEvents]).Result(); err != nil || n != 0 {
		t.Fatalf("the stream of a tenant idle for more than its retention: EXISTS %d, %v; want it gone", n, err)
	}
	f.advance(t, 8*ret) // the tick expires short
	if ev := next(t, sub); ev.Kind != backend.EventExpire || ev.Key != "short" {
		t.Fatalf("next: %+v, want the expiry of short", ev)
	}
	checkPTTL(t, f, keys[keyEvents], 1, ret+ret/4)
	checkPTTL(t, f, keys[keyState], time.Hour-10*ret, time.Hour+ret+ret/4)
}

func TestShrinkAfterIdleMiniredis(t *testing.T) { testShrinkAfterIdle(t, newMini(t)) }
func TestShrinkAfterIdleRedis(t *testing.T)     { testShrinkAfterIdle(t, newReal(t)) }

// Removing the entry of the longest TTL, or writing it again with a shorter one, brings the
// expiry of the state hash and the expiry set back to the longest TTL left, also when the
// tenant was left alone for longer than its retention, so that this write is the one that makes
// the expired stream again; and nothing of the tenant is left a retention (and a quarter) after
// its last entry's expiry.
func testShrinkAfterIdle(t *testing.T, f fixture) {
	ctx := context.Background()
	ret, short := time.Minute, 10*time.Minute
	if f.real {
		ret, short = time.Second, 4*time.Second // waited for in real time
	}
	st := f.open(t, backend.Limits{EventRetention: ret})
	for _, c := range []struct {
		name    string
		shorten func(ten string) error
	}{
		{"remove", func(ten string) error {
			_, err := st.Remove(ctx, ten, backend.RemoveRequest{Key: "long"})
			return err
		}},
		{"rewrite", func(ten string) error {
			_, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "long", Value: []byte("v"), TTL: time.Second})
			return err
		}},
	} {
		ten := "idle-" + c.name
		keys := st.keys(ten)
		upsert(t, st, ten, "long", "v", time.Hour)
		upsert(t, st, ten, "short", "v", short)
		f.advance(t, ret+ret/2) // left alone: the stream expires, the state stays
		if n, err := f.client.Exists(ctx, keys[keyEvents]).Result(); err != nil || n != 0 {
			t.Fatalf("%s: EXISTS of the stream after %v alone: %d, %v; want it gone", c.name, ret+ret/2, n, err)
		}
		if err := c.shorten(ten); err != nil {
			t.Fatal(err)
		}
		hi := short + ret + ret/4 // the longest TTL left, short's, and the retention with its slack
		checkPTTL(t, f, keys[keyState], 1, hi)
		checkPTTL(t, f, keys[keyExp], 1, hi)
	}
	if f.mini == nil {
		return // the rest needs the controllable clock
	}
	f.advance(t, short+ret+ret/4)
	for _, name := range []string{"remove", "rewrite"} {
		if n, err := f.client.Exists(ctx, st.keys("idle-"+name)...).Result(); err != nil || n != 0 {
			t.Errorf("%s: %d keys of the tenant left a retention and a quarter after its last entry expired, %v", name, n, err)
		}
	}
}

func TestStreamExpiryJunkMiniredis(t *testing.T) { testStreamExpiryJunk(t, newMini(t)) }
func TestStreamExpiryJunkRedis(t *testing.T)     { testStreamExpiryJunk(t, newReal(t)) }

// Junk in the meta's "#sexp" (which Lua's tonumber would read as a number: "inf", "1e999") is
// replaced by the next write that adds events, which renews the stream's expiry: read as a
// time, it would keep the writes from renewing it, and the stream would expire under events
// younger than the retention.
func testStreamExpiryJunk(t *testing.T, f fixture) {
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{EventRetention: time.Minute}), "junk sexp"
	keys := st.keys(ten)
	for _, junk := range []string{"inf", "1e999", "nan", "x"} {
		upsert(t, st, ten, "a", "v", time.Hour)
		if err := f.client.HSet(ctx, keys[keyState], metaSexp, junk).Err(); err != nil {
			t.Fatal(err)
		}
		e := upsert(t, st, ten, "a", "w", time.Hour)
		got, err := f.client.HGet(ctx, keys[keyState], metaSexp).Result()
		if at, perr := strconv.ParseInt(got, 10, 64); err != nil || perr != nil || at < e.UpdatedAt+time.Minute.Milliseconds() {
			t.Errorf("#sexp after a write over %q: %q, %v; want a time a retention after %d", junk, got, err, e.UpdatedAt)
		}
		checkPTTL(t, f, keys[keyEvents], time.Minute-time.Second, time.Minute+time.Minute/4)
	}
}
