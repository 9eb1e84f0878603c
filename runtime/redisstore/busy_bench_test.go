//go:build unix

package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
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
	f := newBenchReal(b)
	for _, busy := range []int{0, 16, 48} {
		b.Run(fmt.Sprintf("busy=%d", busy), func(b *testing.B) {
			st := f.open(b, backend.Limits{})
			tenant := fmt.Sprint("busy-", busy)
			sub := subscribe(b, st, tenant, nil)
			epoch := time.Now()
			started := make([]atomic.Int64, b.N)    // the start of call i, since epoch
			delivered := make([]time.Duration, b.N) // its event's receipt, since its start
			got := make(chan struct{})              // closed when the reader has every event
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			wg.Go(func() {
				for n := 0; n < b.N; {
					ev, err := sub.Next(ctx)
					if err != nil {
						return
					}
					if i, err := strconv.Atoi(ev.Key); err == nil && i < b.N && delivered[i] == 0 {
						delivered[i] = time.Since(epoch) - time.Duration(started[i].Load())
						n++
					}
				}
				close(got)
			})
			for range busy {
				wg.Go(func() {
					for ctx.Err() == nil {
						for t0 := time.Now(); time.Since(t0) < 10*time.Microsecond; {
						}
						time.Sleep(500 * time.Microsecond)
					}
				})
			}
			put := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				started[i].Store(int64(t0.Sub(epoch)))
				if _, err := st.Upsert(ctx, tenant, backend.UpsertRequest{Key: strconv.Itoa(i), Value: benchValue, TTL: time.Hour}); err != nil {
					b.Fatal(err)
				}
				put[i] = time.Since(t0)
			}
			b.StopTimer()
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				b.Fatal("the reader did not get every event within 5 s")
			}
			b.ReportMetric(quantile(put, 0.5), "put-p50-µs")
			b.ReportMetric(p99(put), "put-p99-µs")
			b.ReportMetric(quantile(delivered, 0.5), "delivery-p50-µs")
			b.ReportMetric(p99(delivered), "delivery-p99-µs")
		})
	}
}
