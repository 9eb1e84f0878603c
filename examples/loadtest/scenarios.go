package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral"
)

// runner runs the scenarios against one target.
type runner struct {
	cfg      config
	t        *target
	progress *progress
}

// scenario is a named group of rows of the report.
type scenario struct {
	name string
	run  func(r *runner, ctx context.Context) ([]result, error)
}

// scenarios are run in this order; -run selects them by name.
var scenarios = []scenario{
	{"throughput", (*runner).throughput},
	{"snapshot", (*runner).snapshots},
	{"delivery", (*runner).delivery},
	{"expire", (*runner).expire},
	{"fanout", (*runner).fanout},
	{"tenants", (*runner).tenants},
}

// numKeys is the number of distinct keys the throughput and delivery writers cycle through.
const numKeys = 1000

// expireStep is how much longer each key of the expire row lives than the one before, so that
// the expiries fall at different moments of the server's event loop.
const expireStep = 37 * time.Millisecond

// stoppedNote marks a row cut short by -max-time.
const stoppedNote = "stopped by -max-time"

// store returns a store on the target whose default tenant is tenant. Limits belong to the
// store ID, so every store of the run has the same: room for the largest snapshot row.
func (r *runner) store(tenant string) (*SampleStore, error) {
	return NewSampleStore(r.t.backend, ephemeral.WithDefaultTenant(tenant), ephemeral.WithLimits(r.limits()))
}

// limits returns the limits of every store of the run: room for the largest snapshot row,
// and -max-events.
func (r *runner) limits() ephemeral.Limits {
	return ephemeral.Limits{
		MaxEntries: max(10_000, slices.Max(append([]int{0}, r.cfg.snapshotSizes...))),
		MaxEvents:  r.cfg.maxEvents,
	}
}

// throughput times upserts and touches, sequentially and from -c goroutines, beside the
// baseline of a raw SET PX on Redis.
func (r *runner) throughput(ctx context.Context) ([]result, error) {
	store, err := r.store("throughput")
	if err != nil {
		return nil, err
	}
	value := Sample{Writer: 1, Seq: 1, Status: "online"}
	raw, err := SampleCodec{}.Encode(nil, &value)
	if err != nil {
		return nil, err
	}
	keys := make([]string, min(numKeys, r.cfg.ops))
	for i := range keys {
		keys[i] = "k-" + strconv.Itoa(i)
	}
	// Before the rows start, every key exists, so that every touch finds its key, and the
	// tenant has written more than MaxEvents events, so that every write of the rows trims
	// the stream, as a long-lived tenant's writes do (a young tenant's write costs less).
	if _, err := r.spread(ctx, "throughput warm-up", max(len(keys), r.cfg.maxEvents+1), r.cfg.conc, func(ctx context.Context, i int) error {
		_, err := store.Upsert(ctx, keys[i%len(keys)], value)
		return err
	}); err != nil {
		return nil, err
	}
	type row struct {
		name string
		cmds []string // the commands of commandstats that the row's calls send
		op   func(ctx context.Context, i int) error
	}
	rows := []row{
		{"upsert", scriptCmds, func(ctx context.Context, i int) error {
			_, err := store.Upsert(ctx, keys[i%len(keys)], value)
			return err
		}},
		{"touch", scriptCmds, func(ctx context.Context, i int) error {
			res, err := store.Touch(ctx, keys[i%len(keys)])
			if err == nil && !res.OK {
				err = fmt.Errorf("touch %q: key not live", keys[i%len(keys)])
			}
			return err
		}},
	}
	if r.t.client != nil {
		rows = append([]row{{"SET PX (baseline)", []string{"set"}, func(ctx context.Context, i int) error {
			return r.t.client.Set(ctx, r.t.prefix+":set:"+keys[i%len(keys)], raw, time.Minute).Err()
		}}}, rows...)
	}
	var out []result
	for _, c := range []int{1, r.cfg.conc} {
		for _, x := range rows {
			res, err := r.timeOps(ctx, fmt.Sprintf("%s c=%d", x.name, c), x.cmds, c, x.op)
			out = append(out, res)
			if err != nil {
				return out, err
			}
		}
		if r.cfg.conc == 1 {
			break
		}
	}
	return out, nil
}

// scriptCmds are the commands that run the store's scripts: FCALL, or EVALSHA and EVAL where
// the store cannot use functions (see the redisstore package doc).
var scriptCmds = []string{"fcall", "evalsha", "eval"}

// timeOps runs -n timed calls of op from c goroutines and reads the server's commandstats of
// cmds before and after.
func (r *runner) timeOps(ctx context.Context, name string, cmds []string, c int, op func(context.Context, int) error) (result, error) {
	before, statsOK := r.t.commandStats(ctx, cmds...)
	h := new(hist)
	srv := r.serverCPU(ctx)
	cpu := cpuTime()
	elapsed, err := r.spread(ctx, name, r.cfg.ops, c, func(ctx context.Context, i int) error {
		start := time.Now()
		if err := op(ctx, i); err != nil {
			return err
		}
		h.record(time.Since(start))
		return nil
	})
	res := fromHist(name, h, elapsed, cpuTime()-cpu)
	srv(ctx, &res)
	if after, ok := r.t.commandStats(ctx, cmds...); ok && statsOK && after.calls > before.calls && res.Count > 0 {
		res.ServerUsPerCall = round((after.usec-before.usec)/(after.calls-before.calls), 2)
		res.CallsPerOp = round((after.calls-before.calls)/float64(res.Count), 3)
	}
	if res.Count < r.cfg.ops {
		res.Note = stoppedNote
	}
	return res, err
}

// spread calls op(ctx, i) for every i in [0, n) from c goroutines, reporting progress as name,
// until all are done, an op fails or -max-time has passed, and returns how long it took.
// Running out of time is not an error: the caller sees fewer calls done.
func (r *runner) spread(ctx context.Context, name string, n, c int, op func(context.Context, int) error) (time.Duration, error) {
	ctx, cancelTime := context.WithTimeout(ctx, r.cfg.maxTime)
	defer cancelTime()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.progress.start(name, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(c, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := op(ctx, i); err != nil {
					cancel(err)
					return
				}
				r.progress.add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return elapsed, err
	}
	return elapsed, nil
}

// snapshots times Snapshot of tenants of each of the -snapshot-sizes.
func (r *runner) snapshots(ctx context.Context) ([]result, error) {
	var out []result
	for _, size := range r.cfg.snapshotSizes {
		res, err := r.snapshot(ctx, size)
		out = append(out, res...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// snapshot fills a tenant with size entries and times snapshots of it, beside the baseline of a
// raw HGETALL of its state hash on Redis.
func (r *runner) snapshot(ctx context.Context, size int) ([]result, error) {
	tenant := fmt.Sprintf("snapshot-%d", size)
	store, err := r.store(tenant)
	if err != nil {
		return nil, err
	}
	var filled atomic.Int64
	_, err = r.spread(ctx, fmt.Sprintf("fill %d", size), size, r.cfg.conc, func(ctx context.Context, i int) error {
		_, err := store.Upsert(ctx, fmt.Sprintf("k-%07d", i), Sample{Seq: i, Status: "online"}, ephemeral.WithTTL(10*time.Minute))
		if err == nil {
			filled.Add(1)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	want := int(filled.Load())
	check := func(snap ephemeral.Snapshot[string, Sample], err error) error {
		if err == nil && len(snap.Entries) != want {
			err = fmt.Errorf("snapshot of %d entries, want %d", len(snap.Entries), want)
		}
		return err
	}
	var reused []ephemeral.Entry[string, Sample]
	ops := []timedOp{
		{fmt.Sprintf("snapshot n=%d", size), func(ctx context.Context) error { return check(store.Snapshot(ctx)) }},
		{fmt.Sprintf("snapshot n=%d, slice reused", size), func(ctx context.Context) error {
			snap, err := store.AppendSnapshot(ctx, reused[:0])
			reused = snap.Entries
			return check(snap, err)
		}},
	}
	if r.t.client != nil {
		ops = append(ops, timedOp{fmt.Sprintf("HGETALL n=%d (baseline)", size), func(ctx context.Context) error {
			return r.t.client.HGetAll(ctx, r.t.stateKey(tenant)).Err()
		}})
	}
	out, err := r.alternate(ctx, fmt.Sprintf("snapshots n=%d", size), min(max(1_000_000/size, 3), 20), ops)
	if want < size {
		for i := range out {
			out[i].Note = fmt.Sprintf("filled %d entries only, %s", want, stoppedNote)
		}
	}
	return out, err
}

// timedOp is an operation that alternate times.
type timedOp struct {
	name string
	op   func(context.Context) error
}

// alternate times reps rounds of ops, within -max-time, and returns a row of each: a round
// calls each op once, in turn, so that the rows compared meet the same machine (a burst of
// other work, the collection of the garbage of what ran before) rather than one row all of it.
// A row's CPU is read around its own calls, and on Redis the server's too, less what the INFO
// that reads it costs the server (the least of three reads in a row).
func (r *runner) alternate(ctx context.Context, name string, reps int, ops []timedOp) ([]result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.maxTime)
	defer cancel()
	info := time.Duration(-1)
	for range 3 {
		s0, ok0 := r.t.serverCPU(ctx)
		s1, ok1 := r.t.serverCPU(ctx)
		if d := s1 - s0; ok0 && ok1 && (info < 0 || d < info) {
			info = d
		}
	}
	info = max(info, 0)
	r.progress.start(name, reps*len(ops))
	hists := make([]*hist, len(ops))
	for i := range hists {
		hists[i] = new(hist)
	}
	elapsed, cpu, srv := make([]time.Duration, len(ops)), make([]time.Duration, len(ops)), make([]time.Duration, len(ops))
	srvOK := true
	var err error
rounds:
	for range reps {
		for i, op := range ops {
			if ctx.Err() != nil {
				break rounds
			}
			s0, ok0 := r.t.serverCPU(ctx)
			c0 := cpuTime()
			start := time.Now()
			if err = op.op(ctx); err != nil {
				if ctx.Err() != nil {
					err = nil // -max-time: the rows hold what was done
				}
				break rounds
			}
			d := time.Since(start)
			cpu[i] += cpuTime() - c0
			s1, ok1 := r.t.serverCPU(ctx)
			srv[i] += s1 - s0
			srvOK = srvOK && ok0 && ok1
			hists[i].record(d)
			elapsed[i] += d
			r.progress.add(1)
		}
	}
	out := make([]result, len(ops))
	for i, op := range ops {
		out[i] = fromHist(op.name, hists[i], elapsed[i], cpu[i])
		if n := out[i].Count; srvOK && n > 0 {
			out[i].ServerCPUUsPerOp = round(float64(max(srv[i]-time.Duration(n)*info, 0))/1e3/float64(n), 2)
		}
		if n := out[i].Count; n < reps && err == nil {
			out[i].Note = stoppedNote
		}
	}
	return out, err
}

// serverCPU reads the server's CPU time; the function it returns sets res's server CPU per
// operation since then, on Redis.
func (r *runner) serverCPU(ctx context.Context) func(context.Context, *result) {
	before, ok := r.t.serverCPU(ctx)
	return func(ctx context.Context, res *result) {
		if after, ok2 := r.t.serverCPU(ctx); ok && ok2 && res.Count > 0 {
			res.ServerCPUUsPerOp = round(float64(after-before)/1e3/float64(res.Count), 2)
		}
	}
}

// deliverySpec describes a row that measures the time from an upsert's return to its event at
// readers.
type deliverySpec struct {
	name    string
	tenant  string
	events  int  // upserts
	writers int  // goroutines that write
	rate    int  // upserts per second in all; 0 is flat out
	readers int  // readers of the tenant, each receiving every event
	sample  bool // sample the Redis connections and the heap while it runs
	// timed is how many of the readers time each event they receive (all when 0); the
	// others only count theirs. A clock reading and a shared histogram per delivery cost as
	// much as the delivery itself at 10,000 readers, and the row would measure them.
	timed int
	// apart puts the readers on a backend and Redis client of their own, as in another
	// process: they get the events from the writes' notices (or their reads), where readers in
	// the writer's backend get them from the writes' replies.
	apart bool
}

// delivery measures delivery latency to one reader with one writer at -rate, and with one and
// with -c writers flat out; on Redis also with one writer at -rate and flat out to a reader
// apart, on a backend and client of its own (as the NATS rows' watcher is on a connection of
// its own).
func (r *runner) delivery(ctx context.Context) ([]result, error) {
	specs := []deliverySpec{
		{name: fmt.Sprintf("delivery rate=%d/s", r.cfg.rate), tenant: "delivery-paced", writers: 1, rate: r.cfg.rate},
		{name: "delivery flat out c=1", tenant: "delivery-c1", writers: 1},
		{name: fmt.Sprintf("delivery flat out c=%d", r.cfg.conc), tenant: "delivery-cN", writers: r.cfg.conc},
	}
	if r.t.client != nil {
		specs = append(specs,
			deliverySpec{name: fmt.Sprintf("delivery rate=%d/s, reader apart", r.cfg.rate), tenant: "delivery-apart-paced", writers: 1, rate: r.cfg.rate, apart: true},
			deliverySpec{name: "delivery flat out c=1, reader apart", tenant: "delivery-apart-c1", writers: 1, apart: true})
	}
	var out []result
	for _, s := range specs {
		s.events, s.readers = r.cfg.events, 1
		res, err := r.deliver(ctx, s)
		out = append(out, res)
		if err != nil {
			return out, err
		}
	}
	if r.cfg.natsAddr == "" {
		return out, nil
	}
	res, err := r.natsDelivery(ctx)
	return append(out, res...), err
}

// fanout measures delivery latency to each of -readers readers of one tenant with a writer at
// -rate, and samples the connections and the memory it takes.
func (r *runner) fanout(ctx context.Context) ([]result, error) {
	var out []result
	for _, n := range r.cfg.readers {
		res, err := r.deliver(ctx, deliverySpec{
			name:    fmt.Sprintf("fanout readers=%d rate=%d/s", n, r.cfg.rate),
			tenant:  "fanout-" + strconv.Itoa(n),
			events:  r.cfg.fanoutEvents,
			writers: fanoutWriters,
			rate:    r.cfg.rate,
			readers: n,
			sample:  true,
			timed:   timedReaders,
		})
		out = append(out, res)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// timedReaders is how many readers of a fan-out row time their events (see deliverySpec.timed).
const timedReaders = 100

// fanoutWriters is how many goroutines write a fan-out row's paced upserts, each at its own
// time: one writer alone, whose every round trip waits for a CPU behind thousands of runnable
// readers (the Go scheduler polls the network when it has nothing else to run, or every 10 ms),
// fell to 380-741 upserts/s at 1,000/s and 10,000 readers on Redis, and the row measured a
// lower rate than it said.
const fanoutWriters = 4

// deliver runs one delivery row: it opens the readers, writes the events, and records for
// each event at each reader (each of the first s.timed, if set) the time since its upsert
// returned (0 when the event came first).
func (r *runner) deliver(ctx context.Context, s deliverySpec) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.maxTime)
	defer cancel()
	store, err := r.store(s.tenant)
	if err != nil {
		return result{Scenario: s.name}, err
	}
	heap0 := settledHeap(s.sample)
	readStore := store
	if s.apart {
		b, closeApart := r.t.apart()
		defer closeApart()
		if readStore, err = NewSampleStore(b, ephemeral.WithDefaultTenant(s.tenant), ephemeral.WithLimits(r.limits())); err != nil {
			return result{Scenario: s.name}, err
		}
	}
	readers, err := r.openReaders(ctx, readStore, s.readers)
	if err != nil {
		return result{Scenario: s.name}, err
	}
	defer func() {
		for _, rd := range readers {
			rd.Close()
		}
	}()
	heapIdle := settledHeap(s.sample)

	epoch := time.Now()
	written := make([]atomic.Int64, s.events) // when the upsert of Seq i returned, ns since epoch, +1
	h := new(hist)
	// On the delivery rows, also the delay after the upsert's call started (not on the
	// fan-out rows: a second histogram would add to the cost per delivery that they measure).
	var started []atomic.Int64 // when the upsert of Seq i was called, ns since epoch
	var sinceCall *hist
	if !s.sample {
		started, sinceCall = make([]atomic.Int64, s.events), new(hist)
	}
	var overflows, delivered atomic.Int64
	var wg sync.WaitGroup
	var recvErr error
	var errOnce sync.Once
	for i, rd := range readers {
		h, sinceCall := h, sinceCall
		if s.timed > 0 && i >= s.timed {
			h, sinceCall = nil, nil
		}
		wg.Go(func() {
			got, err := receive(ctx, rd, written, started, epoch, h, sinceCall, &overflows)
			delivered.Add(int64(got))
			if err != nil {
				errOnce.Do(func() { recvErr = err; cancel() })
			}
		})
	}
	var smp sampler
	stopSampling := func() {}
	if s.sample {
		stopSampling = smp.run(ctx, r.t)
	}

	start, cpu := time.Now(), cpuTime()
	_, err = r.spread(ctx, s.name, s.events, s.writers, func(ctx context.Context, i int) error {
		if s.rate > 0 {
			if err := waitUntil(ctx, start.Add(time.Duration(i)*time.Second/time.Duration(s.rate))); err != nil {
				return err
			}
		}
		if started != nil {
			started[i].Store(int64(time.Since(epoch)))
		}
		if _, err := store.Upsert(ctx, "k-"+strconv.Itoa(i%numKeys), Sample{Seq: i, Status: "online"}); err != nil {
			return err
		}
		written[i].Store(int64(time.Since(epoch)) + 1)
		return nil
	})
	if err != nil {
		cancel()
	}
	writing := time.Since(start)
	wg.Wait()
	stopSampling()
	res := fromHistCount(s.name, h, int(delivered.Load()), time.Since(start), cpuTime()-cpu)
	res.setSinceCall(sinceCall)
	res.Missing = s.events*s.readers - res.Count
	var notes []string
	if n := overflows.Load(); n > 0 {
		notes = append(notes, fmt.Sprintf("overflows=%d", n))
	}
	// A paced writer that could not keep its rate (on a machine the readers keep busy, its
	// calls wait for a CPU) makes the row's latencies those of a lower rate: say so, for a row
	// of at least a second of writing.
	if achieved := float64(s.events) / writing.Seconds(); s.rate > 0 && s.events >= s.rate && achieved < 0.9*float64(s.rate) {
		notes = append(notes, fmt.Sprintf("writer=%.0f/s", achieved))
	}
	if s.sample {
		res.Conns, res.XRead, res.Blocked = smp.conns.total, smp.conns.xread, smp.conns.blocked
		res.HeapMiB, res.SysMiB = round(float64(smp.heap)/(1<<20), 1), round(float64(smp.sys)/(1<<20), 1)
		if heapIdle > heap0 {
			res.IdleKiB = round(float64(heapIdle-heap0)/1024/float64(s.readers), 1)
		}
	}
	if res.Missing > 0 && ctx.Err() != nil {
		notes = append(notes, stoppedNote)
	}
	res.Note = strings.Join(notes, " ")
	return res, errors.Join(err, recvErr)
}

// openReaders opens n readers of store's default tenant, from -c goroutines.
func (r *runner) openReaders(ctx context.Context, store *SampleStore, n int) ([]*ephemeral.Reader[string, Sample], error) {
	readers := make([]*ephemeral.Reader[string, Sample], n)
	_, err := r.spread(ctx, fmt.Sprintf("open %d readers", n), n, r.cfg.conc, func(ctx context.Context, i int) error {
		rd, err := store.Reader(ctx)
		readers[i] = rd
		return err
	})
	opened := 0
	for _, rd := range readers {
		if rd != nil {
			opened++
		}
	}
	if err == nil && opened < n {
		err = fmt.Errorf("opened %d of %d readers, %s", opened, n, stoppedNote)
	}
	if err != nil {
		for _, rd := range readers {
			if rd != nil {
				rd.Close()
			}
		}
		return nil, err
	}
	return readers, nil
}

// nextUpsert returns the Seq of the next upsert event of rd, counting in overflows the
// overflow events it passes on the way and skipping the other kinds. It returns the Seq, not
// the event: a copy of the event per delivery in the tool is a good part of the cost the
// fan-out rows measure.
func nextUpsert(ctx context.Context, rd *ephemeral.Reader[string, Sample], overflows *atomic.Int64) (seq int, err error) {
	for {
		ev, err := rd.Recv(ctx)
		if err != nil || ev.Kind == ephemeral.EventUpsert {
			return ev.Value.Seq, err
		}
		if ev.Kind == ephemeral.EventOverflow {
			overflows.Add(1)
		}
	}
}

// receive reads upsert events until it has one of every Seq of written or ctx is done, and
// returns how many it got. Unless h is nil, it records in h the delay of each after its upsert
// returned and, unless sinceCall is nil, in sinceCall the delay after the upsert was called
// (started).
func receive(ctx context.Context, rd *ephemeral.Reader[string, Sample], written, started []atomic.Int64, epoch time.Time, h, sinceCall *hist, overflows *atomic.Int64) (got int, err error) {
	for got < len(written) {
		seq, err := nextUpsert(ctx, rd, overflows)
		if err != nil {
			if ctx.Err() != nil {
				return got, nil // out of time: the rest counts as missing
			}
			return got, err
		}
		if seq < 0 || seq >= len(written) {
			return got, fmt.Errorf("event of unknown seq %d", seq)
		}
		got++
		if h == nil {
			continue
		}
		now := int64(time.Since(epoch))
		if w := written[seq].Load(); w != 0 {
			h.record(time.Duration(now - w + 1))
		} else {
			h.record(0) // the event arrived before its Upsert returned
		}
		if sinceCall != nil {
			sinceCall.record(time.Duration(now - started[seq].Load()))
		}
	}
	return got, nil
}

// expire writes -expire-keys keys with short TTLs to a tenant where nothing else happens and
// records, for each, the time from its expiry to its expire event at a reader.
func (r *runner) expire(ctx context.Context) ([]result, error) {
	const name = "expire idle"
	ctx, cancel := context.WithTimeout(ctx, r.cfg.maxTime)
	defer cancel()
	store, err := r.store("expire")
	if err != nil {
		return nil, err
	}
	rd, err := store.Reader(ctx)
	if err != nil {
		return nil, err
	}
	defer rd.Close()

	n := r.cfg.expireKeys
	epoch := time.Now()
	due := make([]atomic.Int64, n) // expected expiry of key i, ns since epoch
	h := new(hist)
	r.progress.start(name, n)
	errc := make(chan error, 1)
	go func() { errc <- r.receiveExpires(ctx, rd, due, epoch, h) }()
	for i := range n {
		ttl := r.cfg.expireTTL + time.Duration(i)*expireStep
		sent := time.Since(epoch)
		if _, err := store.Upsert(ctx, "e-"+strconv.Itoa(i), Sample{Seq: i, Status: "leaving"}, ephemeral.WithTTL(ttl)); err != nil {
			cancel()
			return nil, errors.Join(err, <-errc)
		}
		// The server's clock set ExpiresAt; the middle of the call plus the TTL is the same
		// instant on this machine's clock, within half a round trip, whatever the skew.
		due[i].Store(int64((sent+time.Since(epoch))/2 + ttl))
	}
	err = <-errc
	res := fromHist(name, h, time.Since(epoch), 0)
	res.PerSecond = 0
	res.Missing = n - res.Count
	if res.Missing > 0 {
		res.Note = stoppedNote
	}
	return []result{res}, err
}

// receiveExpires reads events until it has the expire event of every key of due or ctx is
// done, and records how late each came.
func (r *runner) receiveExpires(ctx context.Context, rd *ephemeral.Reader[string, Sample], due []atomic.Int64, epoch time.Time, h *hist) error {
	for got := 0; got < len(due); {
		ev, err := rd.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ev.Kind != ephemeral.EventExpire {
			continue
		}
		now := time.Since(epoch)
		i, err := strconv.Atoi(strings.TrimPrefix(ev.Key, "e-"))
		if err != nil || i < 0 || i >= len(due) {
			return fmt.Errorf("expire event of unknown key %q", ev.Key)
		}
		h.record(now - time.Duration(due[i].Load()))
		r.progress.add(1)
		got++
	}
	return nil
}

// waitUntil waits until t or until ctx is done.
func waitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sampler keeps the largest readings of the run's Redis connections, the Go heap in use and
// the memory the Go runtime holds from the system.
type sampler struct {
	name      string // client name of the connections to count; "" is the run's (t.conn)
	ok        bool   // the connections could be read
	conns     connStats
	heap, sys uint64
}

// run samples now and then every quarter of a second, until the returned stop is called; stop
// may be called more than once.
func (s *sampler) run(ctx context.Context, t *target) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			s.sample(ctx, t)
			select {
			case <-tick.C:
			case <-quit:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return sync.OnceFunc(func() { close(quit); <-done })
}

func (s *sampler) sample(ctx context.Context, t *target) {
	name := s.name
	if name == "" {
		name = t.conn
	}
	if c, ok := t.connections(ctx, name); ok {
		s.ok = true
		s.conns.total = max(s.conns.total, c.total)
		s.conns.xread = max(s.conns.xread, c.xread)
		s.conns.blocked = max(s.conns.blocked, c.blocked)
		s.conns.blocking = max(s.conns.blocking, c.blocking)
	}
	// runtime/metrics, not ReadMemStats: the sampler runs during the row, and ReadMemStats
	// stops the world.
	m := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"}, // with the next, MemStats.HeapInuse
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/total:bytes"}, // MemStats.Sys
	}
	metrics.Read(m)
	s.heap = max(s.heap, m[0].Value.Uint64()+m[1].Value.Uint64())
	s.sys = max(s.sys, m[2].Value.Uint64())
}

// settledHeap returns the bytes of the Go heap in use after a garbage collection, if measure
// is set, and 0 otherwise.
func settledHeap(measure bool) uint64 {
	if !measure {
		return 0
	}
	runtime.GC()
	return heapInUse()
}

// heapInUse returns the bytes of the Go heap in use.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
