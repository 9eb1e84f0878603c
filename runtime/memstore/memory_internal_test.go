package memstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// BenchmarkMillionKeys fills a backend with 1,000,000 live keys with random TTLs (1 s to 1 h)
// and reports the heap bytes the backend uses per entry beyond the keys and values it was
// given (entries, maps, expiry heap and the retained event log), and the timers and scheduler
// goroutines it runs. Run it with
//
//	go test -run '^$' -bench MillionKeys -benchtime 1x ./runtime/memstore
func BenchmarkMillionKeys(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, n)
	values := make([][]byte, n)
	for i := range n {
		keys[i] = fmt.Sprintf("user:%07d", i)
		values[i] = fmt.Appendf(nil, `{"status":"online","n":%07d}`, i)
	}
	for range b.N {
		before := heapAlloc()
		clock := NewFakeClock(time.Now())
		be := New(WithClock(clock))
		s, sT := open(be, "mem", backend.Limits{MaxEntries: n}), "t"
		for i := range n {
			ttl := time.Duration(1+rng.IntN(3600)) * time.Second
			if _, err := s.Upsert(ctx, sT, backend.UpsertRequest{Key: keys[i], Value: values[i], TTL: ttl}); err != nil {
				b.Fatal(err)
			}
		}
		after := heapAlloc()
		b.ReportMetric(float64(after-before)/n, "B/entry")
		b.ReportMetric(float64(clock.timerCount()), "timers")
		b.ReportMetric(float64(schedulers(be)), "goroutines")
		goruntime.KeepAlive(be)
		be.Close()
	}
	b.ReportMetric(float64(len(keys[0])+len(values[0])), "payload-B/entry")
}

func heapAlloc() uint64 {
	goruntime.GC()
	var m goruntime.MemStats
	goruntime.ReadMemStats(&m)
	return m.HeapAlloc
}
