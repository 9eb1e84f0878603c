//go:build unix

package prom_test

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/metrics/prom"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
)

// The benchmarks compare the backends' write path without an observer (the baseline, the
// backend's NopObserver) and with this package's, in the same run:
//
//	go test -run '^$' -bench . -benchmem ./metrics/prom
//	EPHEMERAL_REDIS_ADDR=127.0.0.1:26379 go test -run '^$' -bench Redis -benchmem ./metrics/prom
//
// Besides the wall time (ns/op), they report the CPU time of this process per operation
// (cpu-ns/op), which a busy machine inflates less.

// cpuTime returns the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start, a reading of cpuTime.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

var benchKeys = func() []string {
	ks := make([]string, 1024)
	for i := range ks {
		ks[i] = "user:" + strconv.Itoa(i)
	}
	return ks
}()

var benchValue = []byte(`{"name":"ada","status":"active"}`)

// observers are the runs of each benchmark: no observer, and this package's.
var observers = []struct {
	name string
	obs  func() backend.Observer
}{
	{"observer=none", func() backend.Observer { return nil }},
	{"observer=prom", func() backend.Observer { return prom.New() }},
}

// BenchmarkMemstoreUpsertNext is an upsert and its delivery to a reader on the memory
// backend: the observer's Delivered is called once per operation.
func BenchmarkMemstoreUpsertNext(b *testing.B) {
	ctx := context.Background()
	for _, o := range observers {
		b.Run(o.name, func(b *testing.B) {
			be := memstore.New(memstore.WithObserver(o.obs()))
			defer be.Close()
			st := open(b, be, "bench")
			sub, err := st.Subscribe(ctx, "t", backend.SubscribeRequest{})
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			i := 0
			defer reportCPU(b, cpuTime())
			for b.Loop() {
				req := backend.UpsertRequest{Key: benchKeys[i%len(benchKeys)], Value: benchValue, TTL: time.Hour}
				if _, err := st.Upsert(ctx, "t", req); err != nil {
					b.Fatal(err)
				}
				if _, err := sub.Next(ctx); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkRedisUpsert is a lone Upsert on the Redis server named by EPHEMERAL_REDIS_ADDR: the
// observer's WriteBatch is called once per operation.
func BenchmarkRedisUpsert(b *testing.B) {
	addr := os.Getenv("EPHEMERAL_REDIS_ADDR")
	if addr == "" {
		b.Skip("set EPHEMERAL_REDIS_ADDR to run against a real Redis server")
	}
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: addr})
	defer client.Close()
	for _, o := range observers {
		b.Run(o.name, func(b *testing.B) {
			prefix := "ephemeral-bench-" + backend.NewEpoch(time.Now())
			be := redisstore.New(client, redisstore.WithKeyPrefix(prefix), redisstore.WithObserver(o.obs()))
			defer be.Close()
			st := open(b, be, "bench")
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				req := backend.UpsertRequest{Key: benchKeys[i%len(benchKeys)], Value: benchValue, TTL: time.Minute}
				if _, err := st.Upsert(ctx, "t", req); err != nil {
					b.Fatal(err)
				}
				i++
			}
			reportCPU(b, cpu)
			keys, _ := client.Keys(ctx, prefix+":*").Result()
			if len(keys) > 0 {
				client.Del(ctx, keys...)
			}
		})
	}
}

// BenchmarkDelivered is the cost of one Delivered call of this package, the one per event.
func BenchmarkDelivered(b *testing.B) {
	obs := prom.New()
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		obs.Delivered("bench", "t", backend.EventUpsert, time.Millisecond)
	}
}
