//go:build unix

package redisstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// benchTenants is the number of tenants of BenchmarkTenants.
const benchTenants = 10_000

// BenchmarkTenants measures the connection model with 10,000 tenants on one client with
// go-redis's default options, without readers (the baseline) and with one reader per tenant:
// upserts to random tenants with 8 in flight (b.N of them), the latency of opening a reader in
// another tenant,
// the client's connections and those of them subscribed (CLIENT LIST), and with readers how
// late expire events of idle tenants arrive after ExpiresAt (server and client share a clock).
//
//	EPHEMERAL_REDIS_ADDR=127.0.0.1:26379 go test -run '^$' -bench Tenants -benchtime 20000x ./runtime/redisstore
func BenchmarkTenants(b *testing.B) {
	addr := os.Getenv(redistest.EnvAddr)
	if addr == "" {
		b.Skipf("set %s to run the benchmarks against a real Redis server", redistest.EnvAddr)
	}
	for _, readers := range []bool{false, true} {
		b.Run(fmt.Sprintf("readers=%v", readers), func(b *testing.B) {
			name := "ephemeral-bench-" + backend.NewEpoch(time.Now())
			f := newOn(b, redis.NewClient(&redis.Options{Addr: addr, ClientName: name}), []Option{WithPollInterval(DefaultPollInterval)})
			ctx := context.Background()
			st := f.open(b, backend.Limits{})
			tenant := func(i int) string { return fmt.Sprint("room-", i) }

			var subs []backend.Subscription
			if readers {
				subs = make([]backend.Subscription, benchTenants)
				parallel(benchTenants, 16, func(i int) {
					sub, err := st.Subscribe(ctx, tenant(i), backend.SubscribeRequest{})
					if err != nil {
						b.Error(err)
						return
					}
					subs[i] = sub
				})
				b.Cleanup(func() {
					for _, s := range subs {
						if s != nil {
							s.Close()
						}
					}
				})
			}
			// Readers opened (and closed) one at a time in other tenants, beside the others.
			open := make([]time.Duration, 1000)
			for i := range open {
				t0 := time.Now()
				sub, err := st.Subscribe(ctx, fmt.Sprint("extra-", i), backend.SubscribeRequest{})
				open[i] = time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				sub.Close()
			}

			put := make([]time.Duration, b.N)
			srv0, cli0 := serverCPU(b, f.client), clientCPU()
			b.ResetTimer()
			parallel(b.N, 8, func(i int) {
				t0 := time.Now()
				_, err := st.Upsert(ctx, tenant(rand.IntN(benchTenants)), backend.UpsertRequest{Key: fmt.Sprint("u-", i%100), Value: benchValue, TTL: time.Hour})
				put[i] = time.Since(t0)
				if err != nil {
					b.Error(err)
				}
			})
			b.StopTimer()
			srv, cli := serverCPU(b, f.client)-srv0, clientCPU()-cli0
			b.ReportMetric(float64(cli.Microseconds())/float64(b.N), "client-µs/put")
			b.ReportMetric(float64(srv.Microseconds())/float64(b.N), "server-µs/put")
			conns, subscribed := clientConns(b, f.client, name)
			b.ReportMetric(p99(put), "put-p99-µs")
			b.ReportMetric(p99(open), "open-p99-µs")
			b.ReportMetric(float64(conns), "conns")
			b.ReportMetric(float64(subscribed), "subscribed-conns")
			if readers {
				late := expiryLateness(b, st, subs, tenant)
				b.ReportMetric(p99(late), "expire-late-p99-µs")
				b.ReportMetric(quantile(late, 0.5), "expire-late-p50-µs")
			}
		})
	}
}

// expiryLateness upserts an entry with a TTL of 50 to 250 ms in each of 200 tenants, which are
// idle otherwise, and returns how late after ExpiresAt its expire event reaches the tenant's
// reader (subs[i] reads tenant(i)).
func expiryLateness(b *testing.B, st *store, subs []backend.Subscription, tenant func(int) string) []time.Duration {
	ctx := context.Background()
	late := make([]time.Duration, 200)
	parallel(len(late), len(late), func(j int) {
		i := j * (len(subs) / len(late))
		sub := subs[i]
		// The reader's events so far: it is at the tenant's head once Next blocks.
		for {
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_, err := sub.Next(cctx)
			cancel()
			if err != nil {
				break
			}
		}
		ttl := time.Duration(50+rand.IntN(200)) * time.Millisecond
		e, err := st.Upsert(ctx, tenant(i), backend.UpsertRequest{Key: "short", Value: benchValue, TTL: ttl})
		if err != nil {
			b.Error(err)
			return
		}
		for {
			cctx, cancel := context.WithTimeout(ctx, eventWait)
			ev, err := sub.Next(cctx)
			cancel()
			if err != nil {
				b.Errorf("tenant %d: %v", i, err)
				return
			}
			if ev.Kind == backend.EventExpire && ev.Key == "short" {
				late[j] = time.Since(time.UnixMilli(e.ExpiresAt))
				return
			}
		}
	})
	return late
}

// parallel calls f(0) to f(n-1) from c goroutines.
func parallel(n, c int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range c {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// p99 returns the 99th percentile of ds in microseconds.
func p99(ds []time.Duration) float64 { return quantile(ds, 0.99) }

// quantile returns the q quantile of ds in microseconds.
func quantile(ds []time.Duration, q float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return float64(s[int(float64(len(s))*q)]) / float64(time.Microsecond) // not whole µs: an open of a live pump takes less than one
}

// clientConns returns, from CLIENT LIST, the connections named name and how many of them are
// subscribed to a channel.
func clientConns(b *testing.B, c redis.UniversalClient, name string) (conns, subscribed int) {
	list, err := c.ClientList(context.Background()).Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+name+" ") {
			continue
		}
		conns++
		if !strings.Contains(line, " sub=0 ") || strings.Contains(line, " ssub=") && !strings.Contains(line, " ssub=0 ") {
			subscribed++
		}
	}
	return conns, subscribed
}

// BenchmarkOpens opens b.N readers, each in a tenant of its own (tenants=new) or all in one
// tenant whose pump is live (tenants=one), from 1 and from 32 goroutines on one client with
// go-redis's default options, and keeps them open until the end: the latency of an open (p50,
// p99), the client's and the server's CPU per open, and the heap the readers hold, a reader
// and its tenant's pump (tenants=new) or a reader of a live pump (tenants=one). Then it closes
// them one after the other, as an application's shutdown would: the time and the client's and
// the server's CPU per close, until the hub has written every UNSUBSCRIBE.
//
//	EPHEMERAL_REDIS_ADDR=127.0.0.1:26379 go test -run '^$' -bench Opens -benchtime 10000x ./runtime/redisstore
func BenchmarkOpens(b *testing.B) {
	addr := os.Getenv(redistest.EnvAddr)
	if addr == "" {
		b.Skipf("set %s to run the benchmarks against a real Redis server", redistest.EnvAddr)
	}
	for _, tenants := range []string{"new", "one"} {
		for _, c := range []int{1, 32} {
			b.Run(fmt.Sprintf("tenants=%s/c=%d", tenants, c), func(b *testing.B) {
				f := newOn(b, redis.NewClient(&redis.Options{Addr: addr}), []Option{WithPollInterval(DefaultPollInterval)})
				ctx := context.Background()
				st := f.open(b, backend.Limits{})
				tenant := func(i int) string { return fmt.Sprint("room-", i) }
				if tenants == "one" {
					tenant = func(int) string { return "room" }
					first, err := st.Subscribe(ctx, "room", backend.SubscribeRequest{})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { first.Close() })
					p := first.(*subscription).p
					for {
						p.mu.Lock()
						live := p.settled != 0 && p.settled == p.losses()+1
						p.mu.Unlock()
						if live {
							break
						}
						time.Sleep(time.Millisecond)
					}
				}
				subs := make([]backend.Subscription, b.N)
				b.Cleanup(func() {
					for _, s := range subs {
						if s != nil {
							s.Close()
						}
					}
				})
				open := make([]time.Duration, b.N)
				var mem0, mem1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&mem0)
				srv0, cli0 := serverCPU(b, f.client), clientCPU()
				b.ResetTimer()
				parallel(b.N, c, func(i int) {
					t0 := time.Now()
					sub, err := st.Subscribe(ctx, tenant(i), backend.SubscribeRequest{})
					open[i] = time.Since(t0)
					if err != nil {
						b.Error(err)
						return
					}
					subs[i] = sub
				})
				b.StopTimer()
				srv, cli := serverCPU(b, f.client)-srv0, clientCPU()-cli0
				runtime.GC()
				runtime.ReadMemStats(&mem1)
				b.ReportMetric(float64(int64(mem1.HeapAlloc)-int64(mem0.HeapAlloc))/float64(b.N), "heap-B/reader")
				b.ReportMetric(float64(cli.Microseconds())/float64(b.N), "client-µs/open")
				b.ReportMetric(float64(srv.Microseconds())/float64(b.N), "server-µs/open")
				b.ReportMetric(quantile(open, 0.5), "open-p50-µs")
				b.ReportMetric(p99(open), "open-p99-µs")

				srv0, cli0 = serverCPU(b, f.client), clientCPU()
				t0 := time.Now()
				for i, s := range subs {
					if s != nil {
						s.Close()
						subs[i] = nil
					}
				}
				// A change waited for is written after those before it (see hub.sync).
				hubOf(f.b).sync(ctx, "ephemeral-bench-barrier", true)
				closing := time.Since(t0)
				srv, cli = serverCPU(b, f.client)-srv0, clientCPU()-cli0
				b.ReportMetric(float64(closing.Microseconds())/float64(b.N), "close-µs")
				b.ReportMetric(float64(cli.Microseconds())/float64(b.N), "client-µs/close")
				b.ReportMetric(float64(srv.Microseconds())/float64(b.N), "server-µs/close")
			})
		}
	}
}

// BenchmarkPollCheck measures the poll's check of the tenants that have a pump (checkPumps),
// which runs every poll interval for every such tenant, and once for each new pump: one
// pipeline of 500 tenants, the most the poll sends at once, per op. It reports the client's
// CPU per tenant checked (with -benchmem, the allocations are an op's, of 500 tenants).
//
//	EPHEMERAL_REDIS_ADDR=127.0.0.1:26379 go test -run '^$' -bench PollCheck -benchmem ./runtime/redisstore
func BenchmarkPollCheck(b *testing.B) {
	addr := os.Getenv(redistest.EnvAddr)
	if addr == "" {
		b.Skipf("set %s to run the benchmarks against a real Redis server", redistest.EnvAddr)
	}
	const tenants = 500
	f := newOn(b, redis.NewClient(&redis.Options{Addr: addr}), []Option{WithPollInterval(time.Hour)})
	st := f.open(b, backend.Limits{})
	ctx := context.Background()
	for i := range tenants {
		sub, err := st.Subscribe(ctx, fmt.Sprint("room-", i), backend.SubscribeRequest{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sub.Close() })
	}
	f.b.mu.Lock()
	pumps := make([]*pump, 0, len(f.b.pumps))
	for _, p := range f.b.pumps {
		pumps = append(pumps, p)
	}
	f.b.mu.Unlock()
	if len(pumps) != tenants {
		b.Fatalf("%d pumps, want %d", len(pumps), tenants)
	}
	cli0 := clientCPU()
	for b.Loop() {
		if !f.b.checkPumps(pumps) {
			b.Fatal("Redis did not answer the check")
		}
	}
	b.ReportMetric(float64((clientCPU()-cli0).Nanoseconds())/1e3/float64(b.N*tenants), "client-µs/tenant")
}
