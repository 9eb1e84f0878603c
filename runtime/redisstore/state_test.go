package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime"
)

func TestPayloadBytesMiniredis(t *testing.T) { testPayloadBytes(t, newMini(t)) }
func TestPayloadBytesRedis(t *testing.T)     { testPayloadBytes(t, newReal(t)) }

// Values come back byte for byte from Get, Snapshot and events: no JSON round trip in Lua.
func testPayloadBytes(t *testing.T, f fixture) {
	ctx := context.Background()
	s := scope("bytes")
	sub := subscribe(t, f.b, s, nil)
	values := []string{`[]`, `{}`, `1.0000000000000002`, `"a|b"`, "\x00\xff|1|2|3|\n", ``}
	for i, v := range values {
		key := fmt.Sprint("k", i)
		upsert(t, f.b, s, key, v, time.Hour)
		got, ok, err := f.b.Get(ctx, s, key)
		if err != nil || !ok || !bytes.Equal(got.Value, []byte(v)) {
			t.Errorf("get %q: %q %v %v, want %q", key, got.Value, ok, err, v)
		}
		if ev := next(t, sub); !bytes.Equal(ev.Entry.Value, []byte(v)) || ev.Entry.Key != key {
			t.Errorf("event of %q: %q, want %q", key, ev.Entry.Value, v)
		}
	}
	snap, err := f.b.Snapshot(ctx, s, "")
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

// Every key of a tenant carries a Redis expiry: the longest TTL plus the event retention (with
// at most a quarter of the retention as slack).
func testKeysExpire(t *testing.T, f fixture) {
	ctx := context.Background()
	s := scope("abandoned")
	s.Limits.EventRetention = time.Minute
	upsert(t, f.b, s, "short", "v", time.Second)
	upsert(t, f.b, s, "long", "v", time.Hour)
	lo, hi := time.Hour+time.Minute-time.Second, time.Hour+time.Minute+time.Minute/4
	for _, key := range f.b.keys(s) {
		ttl, err := f.client.PTTL(ctx, key).Result()
		if err != nil || ttl < lo || ttl > hi {
			t.Errorf("PTTL %s = %v, %v; want within [%v, %v]", key, ttl, err, lo, hi)
		}
	}

	// A tenant that was only read expires too.
	r := scope("read-only")
	r.Limits.EventRetention = time.Minute
	subscribe(t, f.b, r, nil).Close()
	state := f.b.keys(r)[0]
	if ttl, err := f.client.PTTL(ctx, state).Result(); err != nil || ttl <= 0 || ttl > time.Minute+time.Minute/4 {
		t.Errorf("PTTL %s = %v, %v; want within (0, %v]", state, ttl, err, time.Minute+time.Minute/4)
	}
}

func TestSnapshotMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	s := scope("snap")
	keys := []string{"b", "a/2", "a/10", "é", "z", "a/1", "\xff"}
	for _, k := range keys {
		upsert(t, f.b, s, k, k, time.Hour)
	}
	upsert(t, f.b, s, "a/short", "v", time.Second)
	f.shift(time.Second)
	upsert(t, f.b, s, "a/late", "v", time.Second) // expires a/short first
	f.shift(time.Second)                          // a/late is due, not reconciled

	snap, err := f.b.Snapshot(ctx, s, "")
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
	snap, err = f.b.Snapshot(ctx, s, "a/")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := entryKeys(snap.Entries), []string{"a/1", "a/10", "a/2"}; !slices.Equal(got, want) {
		t.Fatalf("snapshot of a/: %q, want %q", got, want)
	}
	if _, ok, _ := f.b.Get(ctx, s, "a/late"); ok {
		t.Fatal("Get returned a due entry")
	}
}

func entryKeys(entries []runtime.RawEntry) []string {
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
	s := scope("cap")
	s.Limits.MaxEntries = 2
	upsert(t, f.b, s, "a", "v", time.Second)
	upsert(t, f.b, s, "b", "v", time.Hour)
	_, err := f.b.Upsert(ctx, s, runtime.UpsertRequest{Key: "c", Value: []byte("v"), TTL: time.Hour})
	if !errors.Is(err, runtime.ErrCapacity) {
		t.Fatalf("third key: %v, want ErrCapacity", err)
	}
	upsert(t, f.b, s, "b", "w", time.Hour) // replacing always works
	f.shift(time.Second)
	e := upsert(t, f.b, s, "c", "v", time.Hour)
	// a's expiry took version 4, before c's upsert.
	if e.Version != 5 {
		t.Fatalf("upsert of c: version %d, want 5", e.Version)
	}
}

// Events older than the retention are dropped on the next write; a reader after them gets
// an overflow.
func TestRetentionMiniredis(t *testing.T) {
	f := newMini(t)
	s := scope("ret")
	s.Limits.EventRetention = time.Minute
	for range 3 {
		upsert(t, f.b, s, "k", "v", time.Hour)
	}
	f.shift(time.Minute)
	upsert(t, f.b, s, "k", "v", time.Hour)
	if n, err := f.client.XLen(context.Background(), f.b.keys(s)[2]).Result(); err != nil || n != 1 {
		t.Fatalf("stream length %d, %v; want 1", n, err)
	}
	start := runtime.Cursor{Epoch: subscribe(t, f.b, s, nil).Start().Epoch}
	sub := subscribe(t, f.b, s, &start)
	if ev := next(t, sub); ev.Kind != runtime.EventOverflow || ev.FirstAvailable.Seq != 3 {
		t.Fatalf("event %+v, want an overflow to version 3", ev)
	}
	expectVersions(t, sub, 4, 4)
}

// A snapshot of 10,000 entries (the default MaxEntries) is complete and sorted.
func TestSnapshot10kRedis(t *testing.T) {
	f := newReal(t)
	ctx := context.Background()
	s := scope("snap10k")
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < 10_000; i += 16 {
				if _, err := f.b.Upsert(ctx, s, runtime.UpsertRequest{Key: fmt.Sprintf("k%05d", i), Value: []byte("{}"), TTL: time.Hour}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	snap, err := f.b.Snapshot(ctx, s, "")
	if err != nil || len(snap.Entries) != 10_000 || snap.Cursor.Seq != 10_000 {
		t.Fatalf("snapshot: %d entries, cursor %v, %v", len(snap.Entries), snap.Cursor, err)
	}
	for i, e := range snap.Entries {
		if want := fmt.Sprintf("k%05d", i); e.Key != want {
			t.Fatalf("entry %d is %q, want %q", i, e.Key, want)
		}
	}
}
