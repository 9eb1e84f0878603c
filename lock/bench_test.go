package lock

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
)

// benchBackends are the backends of the benchmarks: memstore, miniredis and, with
// EPHEMERAL_REDIS_ADDR, a real server.
var benchBackends = []struct {
	name string
	new  func(t testing.TB) harness
}{
	{"memstore", newMemstore},
	{"miniredis", newMiniredis},
	{"redis", newRedis},
}

// BenchmarkAcquireRelease is an uncontended TryAcquire and Release of one lock, one after the
// other, beside the baseline of a raw SET NX PX and DEL on the same server (on Redis).
// ops/s counts acquire+release pairs.
func BenchmarkAcquireRelease(b *testing.B) {
	for _, bb := range benchBackends {
		b.Run(bb.name+"/lock", func(b *testing.B) {
			h := bb.new(b)
			l := h.locker(b, WithTTL(10*time.Second))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				lease, err := l.TryAcquire(ctx, "bench")
				if err != nil {
					b.Fatal(err)
				}
				if err := lease.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
		if bb.name == "memstore" {
			continue
		}
		b.Run(bb.name+"/raw-SETNX-DEL", func(b *testing.B) {
			client := rawClient(b, bb.name)
			ctx := context.Background()
			key := "ephemeral-lockbench-" + backend.NewEpoch(time.Now())
			defer client.Del(ctx, key)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				ok, err := client.SetNX(ctx, key, "owner", 10*time.Second).Result()
				if err != nil || !ok {
					b.Fatalf("SET NX: %v, %v", ok, err)
				}
				if err := client.Del(ctx, key).Err(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// rawClient returns a go-redis client on the server of the backend named name: a fresh
// miniredis or the real server.
func rawClient(b *testing.B, name string) *redis.Client {
	var addr string
	if name == "miniredis" {
		addr = miniredis.RunT(b).Addr()
	} else {
		h := newRedis(b) // skips without a server
		addr = h.client.(*redis.Client).Options().Addr
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkHandoff measures the contended handoff: 4 owners (each with a Locker of its own, on
// Redis each with its own client, as separate processes would have) take one lock in turn with
// Acquire, and a releaser waits for another owner to take it before it tries again; the latency
// is from the moment the holder calls Release to the moment the next holder's Acquire returns.
// It reports the 50th and 99th percentiles. Waiters have the default backoff (10 ms to 1 s): a
// handoff faster than that is the lock's delete event waking them.
func BenchmarkHandoff(b *testing.B) {
	for _, bb := range benchBackends {
		b.Run(bb.name, func(b *testing.B) {
			const owners = 4
			h := bb.new(b)
			lockers := make([]*Locker, owners)
			for i := range lockers {
				hb := h
				if h.real {
					hb = newRedisSharing(b, h)
				}
				var err error
				if lockers[i], err = New(hb.b, WithTTL(10*time.Second), WithRetry(DefaultMinRetry, DefaultMaxRetry)); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			var (
				mu        sync.Mutex
				turn      = sync.NewCond(&mu)
				acquires  int64 // guarded by mu
				done      bool  // guarded by mu: no iteration is left
				samples   []time.Duration
				released  atomic.Int64 // UnixNano of the last Release call, 0 before the first
				remaining atomic.Int64
			)
			remaining.Store(int64(b.N))
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, l := range lockers {
				wg.Go(func() {
					for remaining.Add(-1) >= 0 {
						lease, err := l.Acquire(ctx, "handoff")
						if err != nil {
							b.Error(err)
							break
						}
						at := time.Now().UnixNano()
						mu.Lock()
						if r := released.Load(); r != 0 {
							samples = append(samples, time.Duration(at-r))
						}
						acquires++
						mine := acquires
						turn.Broadcast()
						mu.Unlock()
						released.Store(time.Now().UnixNano())
						if err := lease.Release(ctx); err != nil {
							b.Error(err)
							break
						}
						// Hand off: wait until another owner has taken the lock, so that every
						// sample is a handoff to a waiter, not the releaser taking it back.
						mu.Lock()
						for acquires == mine && !done {
							turn.Wait()
						}
						mu.Unlock()
					}
					mu.Lock()
					done = true
					turn.Broadcast()
					mu.Unlock()
				})
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(samples)
			if len(samples) > 0 {
				b.ReportMetric(float64(samples[len(samples)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// newRedisSharing returns a backend on a client of its own, on the server and key prefix of
// h, a harness of newRedis.
func newRedisSharing(t testing.TB, h harness) harness {
	client := redis.NewClient(&redis.Options{Addr: h.client.(*redis.Client).Options().Addr})
	b := redisstore.New(client, redisstore.WithKeyPrefix(h.prefix), redisstore.WithPollInterval(100*time.Millisecond))
	t.Cleanup(func() {
		b.Close()
		client.Close()
	})
	return harness{b: b, client: client, real: true, advance: time.Sleep, prefix: h.prefix}
}

// BenchmarkFairness measures how evenly one Locker serves its goroutines that contend for one
// lock: 8 goroutines each Acquire, hold the lock for 100 µs, Release and at once Acquire
// again, b.N acquisitions in all. It reports the 50th and 99th percentiles and the maximum of
// an Acquire's wait, and the fewest and most acquisitions of one goroutine (even: b.N/8 each).
// Waiters have the default backoff (10 ms to 1 s).
func BenchmarkFairness(b *testing.B) {
	for _, bb := range benchBackends {
		b.Run(bb.name, func(b *testing.B) {
			const goroutines = 8
			h := bb.new(b)
			l, err := New(h.b, WithTTL(10*time.Second), WithRetry(DefaultMinRetry, DefaultMaxRetry))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var (
				mu        sync.Mutex
				waits     []time.Duration
				counts    [goroutines]int
				remaining atomic.Int64
			)
			remaining.Store(int64(b.N))
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for remaining.Add(-1) >= 0 {
						start := time.Now()
						lease, err := l.Acquire(ctx, "fair")
						if err != nil {
							b.Error(err)
							return
						}
						wait := time.Since(start)
						mu.Lock()
						waits = append(waits, wait)
						counts[g]++
						mu.Unlock()
						for t := time.Now(); time.Since(t) < 100*time.Microsecond; {
						}
						if err := lease.Release(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(waits)
			if len(waits) > 0 {
				b.ReportMetric(float64(waits[len(waits)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(waits[len(waits)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(waits[len(waits)-1].Microseconds())/1000, "max-ms")
			}
			b.ReportMetric(float64(slices.Min(counts[:])), "min-acquires")
			b.ReportMetric(float64(slices.Max(counts[:])), "max-acquires")
		})
	}
}
