//go:build unix

// Package fanout is the benchmark of the delivery of one tenant's events to many readers, run
// by the benchmarks of runtime/memstore and runtime/redisstore on their backends: a writer
// upserts, paced or flat out, and every reader receives every event through a typed
// [ephemeral.Reader], each with a value of its own. It reports the process's CPU time per
// delivery (everything the process did: writer, backend, readers and GC, divided by the
// events times the readers) and the delivery latency, from the upsert's start to a reader's
// Recv, sampled on up to 100 readers. A run fails unless every reader got every event.
//
// The baseline, [Chan], does the same over a bare fan-out of channels: the writer sends the
// encoded value to a channel per reader and each reader decodes its own copy.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// Value is the benchmark's value: the time its upsert started and a status, as in a presence
// record.
type Value struct {
	Sent   int64  // Unix nanoseconds
	Status string // ASCII letters only
}

// Codec is Value's codec, written by hand: {"sent":N,"status":"S"}. Like every generated codec
// it has a Clone, which copies a Value by assignment.
type Codec struct{}

// Encode implements [ephemeral.Codec].
func (Codec) Encode(dst []byte, v *Value) ([]byte, error) {
	dst = append(dst, `{"sent":`...)
	dst = strconv.AppendInt(dst, v.Sent, 10)
	dst = append(dst, `,"status":"`...)
	dst = append(dst, v.Status...)
	return append(dst, `"}`...), nil
}

var errSyntax = errors.New("fanout: not a Value")

// Decode implements [ephemeral.Codec].
func (Codec) Decode(src []byte, v *Value) error {
	const head, mid = `{"sent":`, `,"status":"`
	s := string(src)
	if len(s) < len(head)+len(mid)+2 || s[:len(head)] != head || s[len(s)-2:] != `"}` {
		return errSyntax
	}
	s = s[len(head) : len(s)-2]
	i := 0
	for i < len(s) && s[i] != ',' {
		i++
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || len(s[i:]) < len(mid) || s[i:i+len(mid)] != mid {
		return errSyntax
	}
	v.Sent, v.Status = n, s[i+len(mid):]
	return nil
}

// Clone implements [ephemeral.Cloner].
func (Codec) Clone(dst, src *Value) { *dst = *src }

// sampled is the most readers that record latencies.
const sampled = 100

// result is what a run measured.
type result struct {
	cpu       time.Duration
	latencies []time.Duration
	missing   int64
	events    int
	readers   int
}

func (r *result) report(b *testing.B) {
	b.Helper()
	if r.missing > 0 {
		b.Fatalf("%d of %d deliveries missing", r.missing, r.events*r.readers)
	}
	slices.Sort(r.latencies)
	q := func(p float64) float64 {
		if len(r.latencies) == 0 {
			return 0
		}
		return float64(r.latencies[int(p*float64(len(r.latencies)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(r.cpu.Nanoseconds())/float64(r.events*r.readers), "cpu-ns/delivery")
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(r.events*r.readers)/b.Elapsed().Seconds(), "deliveries/s")
}

// Readers runs the benchmark on be: readers readers of one tenant, b.N upserts at rate per
// second (0: flat out).
func Readers(b *testing.B, be ephemeral.Backend, readers, rate int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+paced(b.N, rate))
	defer cancel()
	s, err := ephemeral.New(be, ephemeral.Config[string, Value]{ID: "fanout-" + backend.NewEpoch(time.Now()), TTL: time.Hour, Codec: Codec{}})
	if err != nil {
		b.Fatal(err)
	}
	n := b.N
	res := &result{events: n, readers: readers, latencies: make([]time.Duration, 0, min(readers, sampled)*n)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var missing atomic.Int64
	for i := range readers {
		r, err := s.Reader(ctx)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer r.Close()
			var lat []time.Duration
			if i < sampled {
				lat = make([]time.Duration, 0, n)
			}
			for got := range n {
				ev, err := r.Recv(ctx)
				if err != nil || ev.Kind != ephemeral.EventUpsert {
					missing.Add(int64(n - got))
					break
				}
				if lat != nil {
					lat = append(lat, time.Since(time.Unix(0, ev.Value.Sent)))
				}
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			mu.Unlock()
		})
	}
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = "member:" + strconv.Itoa(i)
	}
	start := begin(b)
	for i := range n {
		pace(start.wall, i, rate)
		if _, err := s.Upsert(ctx, keys[i%len(keys)], Value{Sent: time.Now().UnixNano(), Status: "online"}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	res.cpu = start.end(b)
	res.missing = missing.Load()
	res.report(b)
}

// Chan is the baseline: the same events and readers over a bare channel fan-out. The writer
// encodes each value once and sends it on a channel per reader (buffered, 1024 events); each
// reader decodes its own copy.
func Chan(b *testing.B, readers, rate int) {
	n := b.N
	res := &result{events: n, readers: readers, latencies: make([]time.Duration, 0, min(readers, sampled)*n)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var missing atomic.Int64
	chans := make([]chan []byte, readers)
	for i := range chans {
		ch := make(chan []byte, 1024)
		chans[i] = ch
		wg.Go(func() {
			var lat []time.Duration
			if i < sampled {
				lat = make([]time.Duration, 0, n)
			}
			for got := range n {
				var v Value
				if err := (Codec{}).Decode(<-ch, &v); err != nil {
					missing.Add(int64(n - got))
					break
				}
				if lat != nil {
					lat = append(lat, time.Since(time.Unix(0, v.Sent)))
				}
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			mu.Unlock()
		})
	}
	start := begin(b)
	for i := range n {
		pace(start.wall, i, rate)
		buf, _ := Codec{}.Encode(nil, &Value{Sent: time.Now().UnixNano(), Status: "online"})
		for _, ch := range chans {
			ch <- buf
		}
	}
	wg.Wait()
	res.cpu = start.end(b)
	res.missing = missing.Load()
	res.report(b)
}

// paced returns how long n events take at rate per second.
func paced(n, rate int) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second / time.Duration(rate)
}

// pace waits until event i is due, at rate per second from start.
func pace(start time.Time, i, rate int) {
	if rate > 0 {
		if d := time.Until(start.Add(paced(i, rate))); d > 0 {
			time.Sleep(d)
		}
	}
}

// mark is the start of a measurement.
type mark struct {
	wall time.Time
	cpu  time.Duration
}

func begin(b *testing.B) mark {
	b.ResetTimer()
	return mark{wall: time.Now(), cpu: cpuTime(b)}
}

// end stops the timer and returns the process's CPU time since m.
func (m mark) end(b *testing.B) time.Duration {
	b.StopTimer()
	return cpuTime(b) - m.cpu
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Sizes are the benchmark's reader counts and rates, for sub-benchmark names.
var Sizes = []struct{ Readers, Rate int }{
	{1_000, 1_000},
	{10_000, 1_000},
	{1_000, 0},
}

// Name returns the sub-benchmark name of a size.
func Name(readers, rate int) string {
	r := "flat"
	if rate > 0 {
		r = strconv.Itoa(rate) // per second
	}
	return fmt.Sprintf("readers=%d/rate=%s", readers, r)
}
