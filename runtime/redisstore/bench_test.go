package redisstore

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// benchGoroutines is the number of goroutines of the parallel benchmarks.
const benchGoroutines = 32

// newBenchReal is newReal with a connection pool as large as the benchmarks' parallelism.
func newBenchReal(b *testing.B) fixture {
	addr := os.Getenv(envRedis)
	if addr == "" {
		b.Skipf("set %s to run the benchmarks against a real Redis server", envRedis)
	}
	return newOn(b, redis.NewClient(&redis.Options{Addr: addr, PoolSize: benchGoroutines}), nil)
}

// commandStats returns the calls and microseconds INFO commandstats reports for cmd.
func commandStats(b *testing.B, c redis.UniversalClient, cmd string) (calls, usec float64) {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":")
		if !ok {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			name, value, _ := strings.Cut(field, "=")
			v, _ := strconv.ParseFloat(value, 64)
			switch name {
			case "calls":
				calls = v
			case "usec":
				usec = v
			}
		}
	}
	return calls, usec
}

// runParallel runs op from benchGoroutines goroutines and reports the server time of cmd (from
// INFO commandstats) per op as server-µs/op, and the number of cmd calls per op.
func runParallel(b *testing.B, f fixture, cmd string, op func(ctx context.Context, i int) error) {
	ctx := context.Background()
	b.SetParallelism((benchGoroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	calls0, usec0 := commandStats(b, f.client, cmd)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := op(ctx, i); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.StopTimer()
	calls1, usec1 := commandStats(b, f.client, cmd)
	b.ReportMetric((usec1-usec0)/float64(b.N), "server-µs/op")
	b.ReportMetric((calls1-calls0)/float64(b.N), "calls/op")
}

// BenchmarkUpsert compares Upsert with the baseline of a raw SET key value PX ttl, both from
// 32 goroutines on one client. Run with EPHEMERAL_REDIS_ADDR set:
//
//	go test -run '^$' -bench Upsert ./runtime/redisstore
func BenchmarkUpsert(b *testing.B) {
	f := newBenchReal(b)
	value := []byte(`{"room":"lobby","userId":"u-123456","status":"online"}`)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("user-", i)
	}
	b.Run("baseline=SET-PX", func(b *testing.B) {
		runParallel(b, f, "set", func(ctx context.Context, i int) error {
			return f.client.Set(ctx, "ephemeral-bench:"+keys[i%len(keys)], value, time.Minute).Err()
		})
		f.client.Del(context.Background(), func() []string {
			out := make([]string, len(keys))
			for i, k := range keys {
				out[i] = "ephemeral-bench:" + k
			}
			return out
		}()...)
	})
	b.Run("upsert", func(b *testing.B) {
		st := f.open(b, backend.Limits{})
		runParallel(b, f, "evalsha", func(ctx context.Context, i int) error {
			_, err := st.Upsert(ctx, "bench", backend.UpsertRequest{Key: keys[i%len(keys)], Value: value, TTL: time.Minute})
			return err
		})
	})
}

// BenchmarkSnapshot10k takes a snapshot of 10,000 entries, against the baseline of a raw
// HGETALL of the same hash.
//
//	go test -run '^$' -bench Snapshot ./runtime/redisstore
func BenchmarkSnapshot10k(b *testing.B) {
	f := newBenchReal(b)
	ctx := context.Background()
	st, ten := f.open(b, backend.Limits{}), "snap10k"
	value := []byte(`{"room":"lobby","userId":"u-123456","status":"online"}`)
	for i := range 10_000 {
		if _, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: fmt.Sprintf("user-%05d", i), Value: value, TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("baseline=HGETALL", func(b *testing.B) {
		for b.Loop() {
			if n := len(f.client.HGetAll(ctx, st.keys(ten)[keyState]).Val()); n < 10_000 {
				b.Fatalf("%d fields", n)
			}
		}
	})
	b.Run("snapshot", func(b *testing.B) {
		for b.Loop() {
			snap, err := st.Snapshot(ctx, ten, "")
			if err != nil || len(snap.Entries) != 10_000 {
				b.Fatalf("%d entries, %v", len(snap.Entries), err)
			}
		}
	})
}

// BenchmarkExpireLatency measures how late an expire event reaches a reader of an otherwise
// idle tenant, after the entry's ExpiresAt (server and client share the clock here), against
// the baseline of an upsert event's latency after the Upsert returns.
//
//	go test -run '^$' -bench ExpireLatency ./runtime/redisstore
func BenchmarkExpireLatency(b *testing.B) {
	f := newBenchReal(b)
	ctx := context.Background()
	st, ten := f.open(b, backend.Limits{}), "latency"
	sub := subscribe(b, st, ten, nil)
	var late, base time.Duration
	for b.Loop() {
		e, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "k", Value: []byte("v"), TTL: 20 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		written := time.Now()
		if ev := next(b, sub); ev.Kind != backend.EventUpsert {
			b.Fatalf("event %+v, want upsert", ev)
		}
		base += time.Since(written)
		if ev := next(b, sub); ev.Kind != backend.EventExpire {
			b.Fatalf("event %+v, want expire", ev)
		}
		late += time.Since(time.UnixMilli(e.ExpiresAt))
	}
	b.ReportMetric(float64(base.Microseconds())/float64(b.N), "upsert-event-µs")
	b.ReportMetric(float64(late.Microseconds())/float64(b.N), "expire-late-µs")
}
