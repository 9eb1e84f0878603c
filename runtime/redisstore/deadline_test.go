package redisstore

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// TestUpsertDeadlineUnreachable checks that an upsert to a server that does not answer returns
// when its context ends, not when go-redis gives up dialling (over a second of retries), and
// that the error wraps the context's.
func TestUpsertDeadlineUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every dial is refused
	client := redis.NewClient(&redis.Options{Addr: addr})
	defer client.Close()
	b := New(client)
	defer b.Close()
	st, err := b.Open("test", backend.Limits{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}

	const deadline = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	_, err = st.Upsert(ctx, "down", backend.UpsertRequest{Key: "k", Value: []byte("1"), TTL: time.Second})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Upsert with the server down: %v, want an error wrapping context.DeadlineExceeded", err)
	}
	// Generous: the bug this guards against took 1.7 s.
	if took > deadline+700*time.Millisecond {
		t.Errorf("Upsert with a %v deadline returned after %v", deadline, took)
	}
}

// TestUpsertDroppedWhenCallerGoneMiniredis checks that a write whose caller's context ended
// before its batch was sent is not applied, and does not hold up the others of its batch.
func TestUpsertDroppedWhenCallerGoneMiniredis(t *testing.T) {
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{}), "gone"
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	op := func(key string) writeOp {
		return writeOp{code: opUpsert, key: key, value: []byte(key), ttl: time.Hour}
	}
	calls := []*writeCall{
		{ctx: gone, req: op("dropped"), done: make(chan struct{})},
		{ctx: context.Background(), req: op("kept"), done: make(chan struct{})},
	}
	q := &queue[writeOp, writeResult]{flying: 1, calls: []*writeCall{calls[0], calls[1]}}
	st.writes.mu.Lock()
	st.writes.queues = map[string]*queue[writeOp, writeResult]{ten: q}
	st.writes.mu.Unlock()
	st.writes.drain(ten, q, nil)

	if !errors.Is(calls[0].res.err, context.Canceled) {
		t.Errorf("dropped upsert: err %v, want context.Canceled", calls[0].res.err)
	}
	if calls[1].res.err != nil || calls[1].res.version != 1 {
		t.Errorf("kept upsert: %+v; want version 1", calls[1].res)
	}
	if _, ok, err := st.Get(context.Background(), ten, "dropped"); err != nil || ok {
		t.Errorf("Get(dropped) = %v, %v; want not found", ok, err)
	}
	st.writes.mu.Lock()
	_, left := st.writes.queues[ten]
	st.writes.mu.Unlock()
	if left {
		t.Errorf("queue of an idle tenant was not forgotten")
	}
}

// TestLoneWriteCanceledMiniredis checks that a write with nothing else in flight, which runs on
// its caller's goroutine, is not applied when its context ended before it was sent, and leaves
// no queue behind.
func TestLoneWriteCanceledMiniredis(t *testing.T) {
	f := newMini(t)
	st, ten := f.open(t, backend.Limits{}), "lone"
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "k", Value: []byte("v"), TTL: time.Hour}); !errors.Is(err, context.Canceled) {
		t.Fatalf("upsert with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := st.Remove(ctx, ten, backend.RemoveRequest{Key: "k"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("remove with a canceled context: %v, want context.Canceled", err)
	}
	if _, ok, err := st.Get(context.Background(), ten, "k"); err != nil || ok {
		t.Fatalf("Get(k) = %v, %v; want not found", ok, err)
	}
	st.writes.mu.Lock()
	defer st.writes.mu.Unlock()
	if len(st.writes.queues) != 0 {
		t.Fatalf("%d queues left behind", len(st.writes.queues))
	}
}

// TestWriteRunsOnceMiniredis and TestWriteRunsOnceRedis check that a write whose reply is lost
// (the connection fails after the server ran it) is not sent again by go-redis, which by
// default sends a command again after such a failure: the write returns the connection's
// error, and ran once. Sent twice, the IfNew upsert below failed on its own first run with a
// conflict, and each write made two versions.
func TestWriteRunsOnceMiniredis(t *testing.T) { testWriteRunsOnce(t, miniredis.RunT(t).Addr()) }

func TestWriteRunsOnceRedis(t *testing.T) { testWriteRunsOnce(t, redistest.Client(t).Options().Addr) }

func testWriteRunsOnce(t *testing.T, addr string) {
	proxy := redistest.NewProxy(t, addr)
	client := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
	b := New(client, WithKeyPrefix(redistest.Prefix("once")))
	t.Cleanup(func() {
		b.Close()
		client.Close()
	})
	st, err := b.Open("test", backend.Limits{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	ctx, ten := context.Background(), "once"
	version := func(key string) (uint64, bool) {
		t.Helper()
		e, ok, err := st.Get(ctx, ten, key)
		if err != nil {
			t.Fatal(err)
		}
		return e.Version, ok
	}
	if _, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "a", Value: []byte(`1`), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}

	proxy.DropReply(ten) // the tenant is in the write's keys
	_, err = st.Upsert(ctx, ten, backend.UpsertRequest{Key: "b", Value: []byte(`2`), TTL: time.Hour, Cond: backend.Condition{Kind: backend.CondIfNew}})
	if err == nil || errors.Is(err, backend.ErrConflict) {
		t.Fatalf("IfNew upsert whose reply was lost: %v, want the connection's error", err)
	}
	if v, ok := version("b"); !ok || v != 2 {
		t.Fatalf("after the lost reply b is at version %d (live %v), want 2: the upsert ran once", v, ok)
	}

	proxy.DropReply(ten) // the tenant is in the write's keys
	if _, err := st.Remove(ctx, ten, backend.RemoveRequest{Key: "b", Cond: backend.Condition{Kind: backend.CondIfVersion, Version: 2}}); err == nil || errors.Is(err, backend.ErrConflict) {
		t.Fatalf("remove whose reply was lost: %v, want the connection's error", err)
	}
	if _, ok := version("b"); ok {
		t.Fatal("b is live after its remove ran")
	}
	e, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "c", Value: []byte(`3`), TTL: time.Hour})
	if err != nil || e.Version != 4 {
		t.Fatalf("the next upsert: version %d, %v; want version 4 (a, b, b's remove, c)", e.Version, err)
	}
}
