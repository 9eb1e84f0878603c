//go:build unix

package redisstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// BenchmarkBusyProcess measures what a write's handoff to the reader it woke (see
// backend.Handoff) costs and gives in a process with other work: one writer upserts to a
// tenant with one reader, one call at a time, beside busy goroutines that each work 10 µs and
// sleep 500 µs in a loop (48 of them keep about one CPU busy). It reports the upsert's p50 and
// p99 and the delivery's, from the start of the call to the reader's receipt. Run it against
// the build before a change to the write path and after, alternating:
//
//	EPHEMERAL_REDIS_ADDR=127.0.0.1:26379 go test -run '^$' -bench BusyProcess -benchtime 3000x ./runtime/redisstore
func BenchmarkBusyProcess(b *testing.B) {
	addr := os.Getenv(redistest.EnvAddr)
	if addr == "" {
		b.Skipf("set %s to run the benchmarks against a real Redis server", redistest.EnvAddr)
	}
	for _, busy := range []int{0, 16, 48} {
		b.Run(fmt.Sprintf("busy=%d", busy), func(b *testing.B) {
			f := newOn(b, redis.NewClient(&redis.Options{Addr: addr}), nil)
			st := f.open(b, backend.Limits{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sub, err := st.Subscribe(ctx, "t", backend.SubscribeRequest{})
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			epoch := time.Now()
			started := make([]atomic.Int64, b.N)   // the start of call i, since epoch
			delivered := make([]atomic.Int64, b.N) // its event's receipt, since its start
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			wg.Go(func() {
				for {
					ev, err := sub.Next(ctx)
					if err != nil {
						return
					}
					now := time.Since(epoch)
					if i, err := strconv.Atoi(ev.Key); err == nil && i < b.N {
						delivered[i].Store(int64(now) - started[i].Load())
					}
				}
			})
			var sink atomic.Int64
			for range busy {
				wg.Go(func() {
					for ctx.Err() == nil {
						n, t0 := int64(0), time.Now()
						for time.Since(t0) < 10*time.Microsecond {
							n++
						}
						sink.Add(n)
						time.Sleep(500 * time.Microsecond)
					}
				})
			}
			put := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				started[i].Store(int64(t0.Sub(epoch)))
				if _, err := st.Upsert(ctx, "t", backend.UpsertRequest{Key: strconv.Itoa(i), Value: benchValue, TTL: time.Hour}); err != nil {
					b.Fatal(err)
				}
				put[i] = time.Since(t0)
			}
			b.StopTimer()
			for deadline := time.Now().Add(5 * time.Second); delivered[b.N-1].Load() == 0; {
				if time.Now().After(deadline) {
					b.Fatal("the reader did not get the last event within 5 s")
				}
				time.Sleep(time.Millisecond)
			}
			deliv := make([]time.Duration, 0, b.N)
			for i := range delivered {
				if d := delivered[i].Load(); d > 0 {
					deliv = append(deliv, time.Duration(d))
				}
			}
			if len(deliv) != b.N {
				b.Fatalf("the reader got %d events of %d", len(deliv), b.N)
			}
			b.ReportMetric(quantile(put, 0.5), "put-p50-µs")
			b.ReportMetric(p99(put), "put-p99-µs")
			b.ReportMetric(quantile(deliv, 0.5), "delivery-p50-µs")
			b.ReportMetric(p99(deliv), "delivery-p99-µs")
		})
	}
}
