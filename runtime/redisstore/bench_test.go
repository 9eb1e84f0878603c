//go:build unix

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/internal/codectest"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// The benchmarks run against the server named by EPHEMERAL_REDIS_ADDR, best one of your own
// that nothing else uses: they report its CPU time. Each compares an operation with a baseline
// on the same server in the same run:
//
//	EPHEMERAL_REDIS_ADDR=127.0.0.1:26379 go test -run '^$' -bench . ./runtime/redisstore
//
// Metrics: ns/op is the wall time; client-µs/op the CPU time of this process (user and
// system); server-µs/op the Redis server's used_cpu_user + used_cpu_sys from INFO, all per
// operation. (INFO commandstats would count the commands inside a script twice.)

// benchConc are the concurrencies of the throughput benchmarks: calls in flight.
var benchConc = []int{1, 32}

// newBenchReal is newReal with a connection pool as large as the benchmarks' concurrency.
func newBenchReal(b *testing.B) fixture {
	addr := os.Getenv(redistest.EnvAddr)
	if addr == "" {
		b.Skipf("set %s to run the benchmarks against a real Redis server", redistest.EnvAddr)
	}
	return newOn(b, redis.NewClient(&redis.Options{Addr: addr, PoolSize: benchConc[len(benchConc)-1]}), nil)
}

// serverCPU returns the CPU time the Redis server has used, from INFO cpu.
func serverCPU(b *testing.B, c redis.UniversalClient) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for line := range strings.Lines(info) {
		name, value, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name == "used_cpu_user" || name == "used_cpu_sys" {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				b.Fatalf("INFO cpu: %q", line)
			}
			sum += v
		}
	}
	return time.Duration(sum * float64(time.Second))
}

// clientCPU returns the CPU time (user and system) this process has used.
func clientCPU() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// measure runs body, which does b.N operations, and reports the CPU time of this process and
// of the Redis server per operation.
func measure(b *testing.B, f fixture, body func()) {
	srv0, cli0 := serverCPU(b, f.client), clientCPU()
	b.ResetTimer()
	body()
	b.StopTimer()
	srv, cli := serverCPU(b, f.client)-srv0, clientCPU()-cli0
	b.ReportMetric(float64(cli.Nanoseconds())/1e3/float64(b.N), "client-µs/op")
	b.ReportMetric(float64(srv.Nanoseconds())/1e3/float64(b.N), "server-µs/op")
}

// runConc runs b.N calls of op from c goroutines (c calls in flight) and reports their CPU
// times (see measure).
func runConc(b *testing.B, f fixture, c int, op func(ctx context.Context, i int) error) {
	ctx := context.Background()
	measure(b, f, func() {
		var next atomic.Int64
		done := make(chan struct{})
		for range c {
			go func() {
				defer func() { done <- struct{}{} }()
				for {
					i := int(next.Add(1) - 1)
					if i >= b.N {
						return
					}
					if err := op(ctx, i); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		for range c {
			<-done
		}
	})
}

// benchLimits are the limits of the stores the write benchmarks write: few events kept, so
// that after the first thousand versions every write trims the stream, as a tenant's writes
// do once it has written MaxEvents (by default 50,000) events.
var benchLimits = backend.Limits{MaxEvents: 1000}

// benchValue is the value the throughput benchmarks write: a small presence record.
var benchValue = []byte(`{"room":"lobby","userId":"u-123456","status":"online"}`)

// benchKeys returns the 1,000 keys the throughput benchmarks cycle through.
func benchKeys() []string {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("user-", i)
	}
	return keys
}

// benchSet is the baseline of the throughput benchmarks: a raw SET key value PX 60000 of the
// same value and keys, with c calls in flight.
func benchSet(b *testing.B, f fixture, keys []string, c int) {
	prefix := "ephemeral-bench-" + backend.NewEpoch(time.Now()) + ":"
	runConc(b, f, c, func(ctx context.Context, i int) error {
		return f.client.Set(ctx, prefix+keys[i%len(keys)], benchValue, time.Minute).Err()
	})
	deleteKeys(f.client, prefix[:len(prefix)-1])
}

// benchSetPipelined is the baseline of what the writes' batches do at c calls in flight:
// the same SETs as benchSet, c of them in flight as two pipelines of c/2 at once, as the two
// script calls in flight of a tenant's batched writes carry them (see writeDepth). An op is
// one SET.
func benchSetPipelined(b *testing.B, f fixture, keys []string, c int) {
	prefix := "ephemeral-bench-" + backend.NewEpoch(time.Now()) + ":"
	per := max(c/writeDepth, 1)
	ctx := context.Background()
	measure(b, f, func() {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range writeDepth {
			wg.Go(func() {
				for {
					from := int(next.Add(int64(per))) - per
					if from >= b.N {
						return
					}
					p := f.client.Pipeline()
					for i := from; i < min(from+per, b.N); i++ {
						p.Set(ctx, prefix+keys[i%len(keys)], benchValue, time.Minute)
					}
					if _, err := p.Exec(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
	deleteKeys(f.client, prefix[:len(prefix)-1])
}

// BenchmarkUpsert compares Upsert with a raw SET PX (see benchSet), with 1 and 32 calls in
// flight, and at 32 with SET PX in pipelines too (see benchSetPipelined). The upserts go to
// one tenant, so that concurrent ones are batched; "subscribed" has a reader of the tenant in
// the same backend, which gets every event (its server CPU counts the notices the subscriber
// receives and the pump's reads, if any); "tenants" spreads them over 1,000 tenants, one after
// the other, so that concurrent ones are of different tenants and each is a script call of its
// own.
//
//	go test -run '^$' -bench Upsert ./runtime/redisstore
func BenchmarkUpsert(b *testing.B) {
	f := newBenchReal(b)
	keys := benchKeys()
	for _, c := range benchConc {
		b.Run(fmt.Sprintf("c=%d/baseline=SET-PX", c), func(b *testing.B) { benchSet(b, f, keys, c) })
		if c > 1 {
			b.Run(fmt.Sprintf("c=%d/baseline=SET-PX-pipelined", c), func(b *testing.B) { benchSetPipelined(b, f, keys, c) })
		}
		for _, name := range []string{"upsert", "upsert-subscribed", "upsert-tenants"} {
			b.Run(fmt.Sprintf("c=%d/%s", c, name), func(b *testing.B) {
				st, ten := f.open(b, benchLimits), "bench-"+name
				if name == "upsert-subscribed" {
					stop := drain(b, st, ten)
					defer stop()
				}
				runConc(b, f, c, func(ctx context.Context, i int) error {
					ten := ten
					if name == "upsert-tenants" {
						ten = keys[i%len(keys)]
					}
					_, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: keys[i%len(keys)], Value: benchValue, TTL: time.Minute})
					return err
				})
			})
		}
	}
}

// drain subscribes a reader of tenant that reads every event until stop is called.
func drain(b *testing.B, st backend.Store, tenant string) (stop func()) {
	sub := subscribe(b, st, tenant, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := sub.Next(ctx); err != nil && ctx.Err() != nil {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// BenchmarkTouch compares Touch, plain and quiet, with a raw SET PX (see benchSet), with 1
// and 32 calls in flight (at 32, in pipelines too: see benchSetPipelined), on 1,000 live keys
// of one tenant.
//
//	go test -run '^$' -bench Touch ./runtime/redisstore
func BenchmarkTouch(b *testing.B) {
	f := newBenchReal(b)
	keys := benchKeys()
	st := f.open(b, benchLimits)
	for _, k := range keys {
		if _, err := st.Upsert(context.Background(), "bench", backend.UpsertRequest{Key: k, Value: benchValue, TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range benchConc {
		b.Run(fmt.Sprintf("c=%d/baseline=SET-PX", c), func(b *testing.B) { benchSet(b, f, keys, c) })
		if c > 1 {
			b.Run(fmt.Sprintf("c=%d/baseline=SET-PX-pipelined", c), func(b *testing.B) { benchSetPipelined(b, f, keys, c) })
		}
		for _, quiet := range []bool{false, true} {
			name := map[bool]string{false: "touch", true: "quiet"}[quiet]
			b.Run(fmt.Sprintf("c=%d/%s", c, name), func(b *testing.B) {
				runConc(b, f, c, func(ctx context.Context, i int) error {
					r, err := st.Touch(ctx, "bench", backend.TouchRequest{Key: keys[i%len(keys)], TTL: time.Hour, Quiet: quiet})
					if err == nil && !r.OK {
						err = fmt.Errorf("touch %d: not live", i)
					}
					return err
				})
			})
		}
	}
}

// BenchmarkTouchMany renews rooms of 10 live keys, a tenant each, as the presence example's
// servers do its members: an op is one room's 10 quiet touches, with 1 and 32 rooms in
// flight over 100 rooms. "touch-each" is the baseline, 10 calls of Touch at once, each on a
// goroutine of its own (the store batches them); "pexpire" a pipeline of 10 raw PEXPIREs of
// keys of the same names.
//
//	go test -run '^$' -bench TouchMany ./runtime/redisstore
func BenchmarkTouchMany(b *testing.B) {
	f := newBenchReal(b)
	st := f.open(b, benchLimits)
	const rooms, members = 100, 10
	keys := benchKeys()[:members]
	prefix := "ephemeral-bench-" + backend.NewEpoch(time.Now())
	defer deleteKeys(f.client, prefix)
	// The rooms' names and their raw keys, made here: the calls of an op are all it does.
	names, raw := make([]string, rooms), make([][]string, rooms)
	for r := range rooms {
		names[r], raw[r] = fmt.Sprint("room-", r), make([]string, members)
		for j, k := range keys {
			ctx := context.Background()
			if _, err := st.Upsert(ctx, names[r], backend.UpsertRequest{Key: k, Value: benchValue, TTL: time.Hour}); err != nil {
				b.Fatal(err)
			}
			raw[r][j] = fmt.Sprint(prefix, ":", r, ":", k)
			if err := f.client.Set(ctx, raw[r][j], benchValue, time.Hour).Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, c := range benchConc {
		b.Run(fmt.Sprintf("c=%d/baseline=pexpire", c), func(b *testing.B) {
			runConc(b, f, c, func(ctx context.Context, i int) error {
				cmds, err := f.client.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range raw[i%rooms] {
						p.PExpire(ctx, k, time.Hour)
					}
					return nil
				})
				for _, cmd := range cmds {
					if err == nil && !cmd.(*redis.BoolCmd).Val() {
						err = fmt.Errorf("PEXPIRE %v: not live", cmd.Args())
					}
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("c=%d/baseline=touch-each", c), func(b *testing.B) {
			runConc(b, f, c, func(ctx context.Context, i int) error {
				var wg sync.WaitGroup
				errs := make([]error, len(keys))
				for j, k := range keys {
					wg.Go(func() {
						r, err := st.Touch(ctx, names[i%rooms], backend.TouchRequest{Key: k, TTL: time.Hour, Quiet: true})
						if err == nil && !r.OK {
							err = fmt.Errorf("touch %s: not live", k)
						}
						errs[j] = err
					})
				}
				wg.Wait()
				return errors.Join(errs...)
			})
		})
		b.Run(fmt.Sprintf("c=%d/touch-many", c), func(b *testing.B) {
			runConc(b, f, c, func(ctx context.Context, i int) error {
				rs, err := st.TouchMany(ctx, names[i%rooms], backend.TouchManyRequest{Keys: keys, TTL: time.Hour, Quiet: true})
				for j, r := range rs {
					if !r.OK {
						return fmt.Errorf("touch %s: not live", keys[j])
					}
				}
				return err
			})
		})
	}
}

// BenchmarkRemove compares Remove of a live key, each after an upsert of it, with the baseline
// of the upserts alone, with 1 and 32 calls in flight.
//
//	go test -run '^$' -bench Remove ./runtime/redisstore
func BenchmarkRemove(b *testing.B) {
	f := newBenchReal(b)
	keys := benchKeys()
	st := f.open(b, benchLimits)
	upsert := func(ctx context.Context, i int) error {
		_, err := st.Upsert(ctx, "bench", backend.UpsertRequest{Key: keys[i%len(keys)], Value: benchValue, TTL: time.Minute})
		return err
	}
	for _, c := range benchConc {
		b.Run(fmt.Sprintf("c=%d/baseline=upsert", c), func(b *testing.B) { runConc(b, f, c, upsert) })
		b.Run(fmt.Sprintf("c=%d/upsert+remove", c), func(b *testing.B) {
			runConc(b, f, c, func(ctx context.Context, i int) error {
				if err := upsert(ctx, i); err != nil {
					return err
				}
				ok, err := st.Remove(ctx, "bench", backend.RemoveRequest{Key: keys[i%len(keys)]})
				if err == nil && !ok {
					err = fmt.Errorf("remove %d: not live", i)
				}
				return err
			})
		})
	}
}

// BenchmarkSnapshot10k takes a snapshot of 10,000 entries, against the baseline of a raw
// HGETALL of the same hash.
//
//	go test -run '^$' -bench Snapshot ./runtime/redisstore
func BenchmarkSnapshot10k(b *testing.B) {
	f := newBenchReal(b)
	ctx := context.Background()
	st, ten := f.open(b, backend.Limits{}), "snap10k"
	for i := range 10_000 {
		if _, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: fmt.Sprintf("user-%05d", i), Value: benchValue, TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	againstHGETALL(b, f, st, ten, "snapshot", func() (int, error) {
		snap, err := st.Snapshot(ctx, ten, "")
		return len(snap.Entries), err
	})
}

// againstHGETALL runs the sub-benchmarks baseline=HGETALL, of the state hash of st's tenant
// ten, and name, which takes a snapshot of it with snapshot; both must see 10,000 entries.
func againstHGETALL(b *testing.B, f fixture, st *store, ten, name string, snapshot func() (int, error)) {
	ctx := context.Background()
	b.Run("baseline=HGETALL", func(b *testing.B) {
		measure(b, f, func() {
			for range b.N {
				if n := len(f.client.HGetAll(ctx, st.keys(ten)[keyState]).Val()); n < 10_000 {
					b.Fatalf("%d fields", n)
				}
			}
		})
	})
	b.Run(name, func(b *testing.B) {
		measure(b, f, func() {
			for range b.N {
				if n, err := snapshot(); err != nil || n != 10_000 {
					b.Fatalf("%d entries, %v", n, err)
				}
			}
		})
	})
}

// BenchmarkTypedSnapshot10k takes a snapshot of 10,000 presence values (strings, a time, a
// slice) through the typed store, decoded, against the baseline of a raw HGETALL of the same
// hash.
//
//	go test -run '^$' -bench TypedSnapshot ./runtime/redisstore
func BenchmarkTypedSnapshot10k(b *testing.B) {
	f := newBenchReal(b)
	ctx := context.Background()
	s, err := ephemeral.New(f.b, ephemeral.Config[string, codectest.Presence]{ID: "typedsnap", TTL: time.Hour, Codec: codectest.PresenceCodec{}})
	if err != nil {
		b.Fatal(err)
	}
	ten := "snap10k"
	v := codectest.Presence{Room: "lobby-42", Status: "online", Level: 3, Since: time.Now().UTC(), Tabs: []string{"chat", "settings"}}
	for i := range 10_000 {
		v.UserID = fmt.Sprintf("user-%05d", i)
		if _, err := s.Upsert(ctx, v.UserID, v, ephemeral.WithTenant(ten)); err != nil {
			b.Fatal(err)
		}
	}
	raw, err := f.b.Open("typedsnap", backend.Limits{}.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	againstHGETALL(b, f, raw.(*store), ten, "typed", func() (int, error) {
		snap, err := s.Snapshot(ctx, ephemeral.WithTenant(ten))
		return len(snap.Entries), err
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

// BenchmarkKeptMemory measures the memory a store keeps of the values its snapshots read (see
// memoCache): the heap after two whole typed snapshots of 10,000 presence values, which keep
// each value's bytes and, from the second, its decoded form, less the heap before them, per
// value kept. Each round is a new store ID, of a cache of its own; the snapshots themselves
// are dropped before the heap is measured.
//
//	go test -run '^$' -bench KeptMemory -benchtime 3x ./runtime/redisstore
func BenchmarkKeptMemory(b *testing.B) {
	f := newBenchReal(b)
	ctx := context.Background()
	const n = 10_000
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC() // the second clears what sync.Pools kept through the first (reply buffers)
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var kept, per float64
	round := 0
	for b.Loop() {
		round++
		s, err := ephemeral.New(f.b, ephemeral.Config[string, codectest.Presence]{ID: fmt.Sprint("keptmem-", round), TTL: time.Hour, Codec: codectest.PresenceCodec{}})
		if err != nil {
			b.Fatal(err)
		}
		v := codectest.Presence{Room: "lobby-42", Status: "online", Level: 3, Since: time.Now().UTC(), Tabs: []string{"chat", "settings"}}
		for i := range n {
			v.UserID = fmt.Sprintf("user-%05d", i)
			if _, err := s.Upsert(ctx, v.UserID, v, ephemeral.WithTenant("kept")); err != nil {
				b.Fatal(err)
			}
		}
		raw, err := f.b.Open(fmt.Sprint("keptmem-", round), backend.Limits{}.WithDefaults())
		if err != nil {
			b.Fatal(err)
		}
		st := raw.(*store)
		before := heap()
		for range 2 {
			snap, err := s.Snapshot(ctx, ephemeral.WithTenant("kept"))
			if err != nil || len(snap.Entries) != n {
				b.Fatalf("%d entries, %v", len(snap.Entries), err)
			}
		}
		after := heap()
		if got := st.kept.Load(); got != n {
			b.Fatalf("%d values kept, want %d", got, n)
		}
		kept += float64(n)
		per += float64(after) - float64(before)
	}
	b.ReportMetric(per/kept, "B/kept-value")
}
