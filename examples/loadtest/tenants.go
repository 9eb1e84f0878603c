package main

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
)

// tenantWriters is the number of goroutines that write in the tenants rows.
const tenantWriters = 8

// tenantsBackend returns the backend of the tenants scenario: on Redis a new backend on a
// client with go-redis's default options (its pool too) but for the address and a client name
// of its own, so that CLIENT LIST tells its connections apart; on memory the target's backend.
// name is the client name, "" on memory.
func (r *runner) tenantsBackend() (b ephemeral.Backend, name string, closeFn func() error) {
	if r.t.client == nil {
		return r.t.backend, "", func() error { return nil }
	}
	name = r.t.conn + "-tenants"
	client := redis.NewClient(&redis.Options{Addr: r.t.addr, ClientName: name})
	rb := redisstore.New(client, redisstore.WithKeyPrefix(r.t.prefix))
	return rb, name, func() error { return errors.Join(rb.Close(), client.Close()) }
}

// tenants opens one reader in each of -tenants tenants, all on one backend and, on Redis, one
// client with default options, and measures what that costs: upserts spread over tenants,
// half of them watched and half not, without the readers (the baseline) and with them; the
// time to open a reader; the connections the readers hold; and the delivery of every event
// written to a watched tenant.
func (r *runner) tenants(ctx context.Context) (out []result, err error) {
	n, m := r.cfg.tenants, r.cfg.events
	b, connName, closeBackend := r.tenantsBackend()
	defer func() { err = errors.Join(err, closeBackend()) }()
	store, err := NewSampleStore(b, ephemeral.WithLimits(r.limits()))
	if err != nil {
		return nil, err
	}
	// Upsert i of a row goes to watched tenant t-<tenantIndex(i, n, m)> if i is even, to the
	// unwatched u-<tenantIndex(i, n, m)> if odd; its Seq is i in the baseline row and m+i
	// in the row with readers.
	tenantOf := func(i int) string {
		if i%2 == 0 {
			return "t-" + strconv.Itoa(tenantIndex(i, n, m))
		}
		return "u-" + strconv.Itoa(tenantIndex(i, n, m))
	}
	epoch := time.Now()
	written := make([]atomic.Int64, 2*m) // when the upsert of Seq j returned, ns since epoch, +1
	upserts := func(ctx context.Context, name string, from int) (result, error) {
		h := new(hist)
		var failed atomic.Int64
		var firstErr atomic.Value
		cpu := cpuTime()
		elapsed, err := r.spread(ctx, name, m, tenantWriters, func(ctx context.Context, i int) error {
			j := from + i
			start := time.Now()
			_, err := store.Upsert(ctx, "k-"+strconv.Itoa(j%numKeys), Sample{Seq: j, Status: "online"}, ephemeral.WithTenant(tenantOf(i)))
			if err != nil {
				if ctx.Err() == nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				return nil
			}
			h.record(time.Since(start))
			written[j].Store(int64(time.Since(epoch)) + 1)
			return nil
		})
		res := fromHist(name, h, elapsed, cpuTime()-cpu)
		res.Note = failures(int(failed.Load()), firstErr.Load())
		if res.Count+int(failed.Load()) < m {
			res.Note = joinNotes(res.Note, stoppedNote)
		}
		return res, err
	}

	// The same upserts first, not reported, so that the baseline finds the tenants and the
	// client's pool as the row with readers does: a tenant's first write, which makes its
	// epoch, and the pool's dials cost more than the writes after them (a cold baseline made
	// the ratio of the two rows 0.47-0.52).
	if _, err := upserts(ctx, fmt.Sprintf("tenants=%d upsert, warming up", n), 0); err != nil {
		return out, err
	}
	base, err := upserts(ctx, fmt.Sprintf("tenants=%d upsert, no readers", n), 0)
	out = append(out, base)
	if err != nil {
		return out, err
	}

	var smp sampler
	smp.name = connName
	stopSampling := smp.run(ctx, r.t)
	defer stopSampling()

	name := fmt.Sprintf("tenants=%d open readers", n)
	readers := make([]*ephemeral.Reader[string, Sample], n)
	defer func() {
		for _, rd := range readers {
			if rd != nil {
				rd.Close()
			}
		}
	}()
	// Every reader receives from when it opens until its context ends, as an application's
	// would (so the row with readers does not time the start of their goroutines); delivered
	// counts the events of the upserts with readers, each at the one reader of its tenant.
	recvCtx, stopRecv := context.WithCancel(ctx)
	deliveryHist := new(hist)
	var delivered, overflows atomic.Int64
	var wg sync.WaitGroup
	var recvErr error
	var errOnce sync.Once
	defer func() { stopRecv(); wg.Wait() }() // before the readers close
	receive := func(i int, rd *ephemeral.Reader[string, Sample]) {
		wg.Go(func() {
			err := receiveTenant(recvCtx, rd, i, n, m, written, epoch, deliveryHist, &delivered, &overflows)
			if err != nil {
				errOnce.Do(func() { recvErr = fmt.Errorf("reader of t-%d: %w", i, err); stopRecv() })
			}
		})
	}
	openHist := new(hist)
	var openFailed atomic.Int64
	var openErr atomic.Value
	gc0 := readGC()
	cpu := cpuTime()
	elapsed, err := r.spread(ctx, name, n, r.cfg.conc, func(ctx context.Context, i int) error {
		start := time.Now()
		rd, err := store.Reader(ctx, ephemeral.WithTenant("t-"+strconv.Itoa(i)))
		if err != nil {
			if ctx.Err() == nil {
				openFailed.Add(1)
				openErr.CompareAndSwap(nil, err.Error())
			}
			return nil
		}
		openHist.record(time.Since(start))
		readers[i] = rd
		receive(i, rd)
		return nil
	})
	open := fromHist(name, openHist, elapsed, cpuTime()-cpu)
	if gc := readGC(); open.Count > 0 {
		open.GCCycles = int(gc.cycles - gc0.cycles)
		open.GCCPUUsPerOp = round((gc.cpu-gc0.cpu)*1e6/float64(open.Count), 2)
	}
	open.Note = failures(int(openFailed.Load()), openErr.Load())
	if open.Count < n {
		open.Note = joinNotes(open.Note, fmt.Sprintf("opened %d of %d", open.Count, n))
		if open.Count+int(openFailed.Load()) < n {
			open.Note = joinNotes(open.Note, stoppedNote)
		}
	}
	out = append(out, open)
	if err != nil {
		return out, err
	}

	name = fmt.Sprintf("tenants=%d upsert, %d readers open", n, open.Count)
	with, err := upserts(ctx, name, m)
	if err != nil {
		return append(out, with), err
	}
	// Watched upserts to tenants whose reader did not open have nobody to reach.
	expected := 0
	for i := 0; i < m; i += 2 {
		if written[m+i].Load() != 0 && readers[tenantIndex(i, n, m)] != nil {
			expected++
		}
	}

	name = fmt.Sprintf("tenants=%d events", n)
	r.progress.start(name, expected)
	cpu = cpuTime()
	start := time.Now()
	deadline := time.NewTimer(r.cfg.maxTime)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
wait:
	for int(delivered.Load()) < expected && recvCtx.Err() == nil {
		select {
		case <-tick.C:
		case <-deadline.C:
			break wait
		case <-recvCtx.Done():
		}
	}
	stopRecv()
	wg.Wait()
	stopSampling()
	if recvErr != nil {
		return out, recvErr
	}
	ev := fromHist(name, deliveryHist, time.Since(start), cpuTime()-cpu)
	ev.PerSecond = 0
	ev.Missing = expected - ev.Count
	if ev.Missing > 0 {
		ev.Note = stoppedNote
	}
	if k := overflows.Load(); k > 0 {
		ev.Note = joinNotes(fmt.Sprintf("overflows=%d", k), ev.Note)
	}

	with.PutP99NoReaders, with.PutP99Readers = base.P99, with.P99
	with.ReaderOpenP50, with.ReaderOpenP99 = open.P50, open.P99
	if smp.ok {
		with.Conns, with.XRead, with.Blocked = smp.conns.total, smp.conns.xread, smp.conns.blocked
		with.BlockingConns = &smp.conns.blocking
	}
	return append(out, with, ev), nil
}

// gcStats is what the Go runtime reports of its garbage collections so far.
type gcStats struct {
	cycles uint64  // completed cycles
	cpu    float64 // the CPU seconds they took, an estimate of the runtime's
}

// readGC returns the collections so far.
func readGC() gcStats {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	var g gcStats
	if s[0].Value.Kind() == metrics.KindUint64 {
		g.cycles = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindFloat64 {
		g.cpu = s[1].Value.Float64()
	}
	return g
}

// receiveTenant reads the events of the reader of tenant t-i until ctx ends, and records for
// each upsert event of Seq m or later the delay after its upsert returned.
func receiveTenant(ctx context.Context, rd *ephemeral.Reader[string, Sample], i, n, m int, written []atomic.Int64, epoch time.Time, h *hist, delivered, overflows *atomic.Int64) error {
	for {
		j, err := nextUpsert(ctx, rd, overflows)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := int64(time.Since(epoch))
		if j < m || j >= len(written) || (j-m)%2 != 0 || tenantIndex(j-m, n, m) != i {
			return fmt.Errorf("event of seq %d, not one of this tenant's", j)
		}
		if w := written[j].Load(); w != 0 {
			h.record(time.Duration(now - w + 1))
		} else {
			h.record(0)
		}
		delivered.Add(1)
	}
}

// tenantIndex returns the tenant of upsert i of a row of m upserts to n tenants: the pairs of
// upserts (one watched, one not) are spread evenly over the tenants.
func tenantIndex(i, n, m int) int {
	pairs := (m + 1) / 2
	return (i / 2) * n / pairs % n
}

// failures notes n failed calls and the first error, if any.
func failures(n int, first any) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("errors=%d (%v)", n, first)
}

// joinNotes joins the non-empty notes with spaces.
func joinNotes(notes ...string) string {
	var s []string
	for _, n := range notes {
		if n != "" {
			s = append(s, n)
		}
	}
	return strings.Join(s, " ")
}
