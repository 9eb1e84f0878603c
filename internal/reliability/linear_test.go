package reliability

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
)

// The linearizability test: concurrent clients make random calls on a few keys while faults
// hit the server; every call is recorded with its start, end and result, and porcupine checks
// that the history is linearizable, with and without the reader's events. See runLinear.

// Keys of a tenant: few, so that calls collide.
const linKeys = 4

var linKeyNames = [linKeys]string{"k0", "k1", "k2", "k3"}

func linKeyIndex(k string) int {
	for i, n := range linKeyNames {
		if n == k {
			return i
		}
	}
	return -1
}

const (
	linClients       = 4 // go-redis clients (and backends), so that faults hit them separately
	linWorkersPer    = 2 // goroutines per client, so that upserts are batched
	linWorkers       = linClients * linWorkersPer
	linTenantCount   = 3                      // one per master of the cluster
	linPace          = 2 * time.Millisecond   // each worker makes at most one call per pace
	linCallTimeout   = 250 * time.Millisecond // a call's deadline: DEBUG SLEEP outlasts it
	linSegmentMax    = 10 * time.Second       // a history: the calls between two restarts
	linStoreID       = "linear"
	linClientPrefix  = "lin-" // the name of every connection the test may kill
	linCheckerClient = linWorkers
)

func TestLinearizabilityMemstore(t *testing.T) {
	b := memstore.New()
	t.Cleanup(func() { b.Close() })
	runLinear(t, &linTarget{
		tenants: linTenants(nil),
		newStore: func(t *testing.T, _ string) *ephemeral.Store[string, string] {
			return newStore(t, b, linStoreID, ephemeral.Limits{})
		},
	}).fail(t)
}

func TestLinearizabilityRedis(t *testing.T) {
	srv := redistest.StartServer(t, "--enable-debug-command", "local")
	tg := redisTarget(t, []*redistest.Server{srv}, func(name string, retries bool) redis.UniversalClient {
		return redis.NewClient(&redis.Options{Addr: srv.Addr(), ClientName: name, MaxRetries: retriesOpt(retries), ContextTimeoutEnabled: true})
	})
	tg.restart = func(*rand.Rand) { srv.Restart() }
	runLinear(t, tg).fail(t)
}

func TestLinearizabilityCluster(t *testing.T) {
	nodes := startCluster(t)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr()
	}
	tg := redisTarget(t, nodes, func(name string, retries bool) redis.UniversalClient {
		// A cluster client retries network errors up to MaxRedirects times, whatever MaxRetries
		// says: no redirects (the slots never move here), so that no write is sent twice.
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ClientName: name, MaxRedirects: retriesOpt(retries), ContextTimeoutEnabled: true})
	})
	tg.tenants = linTenants(tg.admin)
	tg.restart = func(rng *rand.Rand) {
		nodes[rng.IntN(len(nodes))].Restart()
		waitClusterOK(t, tg.admin)
	}
	runLinear(t, tg).fail(t)
}

func TestLinearizabilitySentinel(t *testing.T) {
	master := redistest.StartServer(t, "--enable-debug-command", "local")
	sentinel := startSentinel(t, master)
	tg := redisTarget(t, []*redistest.Server{master}, func(name string, retries bool) redis.UniversalClient {
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "lin", SentinelAddrs: []string{sentinel.Addr()},
			ClientName: name, MaxRetries: retriesOpt(retries), ContextTimeoutEnabled: true})
	})
	tg.restart = func(*rand.Rand) { master.Restart() }
	runLinear(t, tg).fail(t)
}

// retriesOpt is go-redis's MaxRetries (or MaxRedirects): none for the workers, whose writes
// must not be sent twice, the default for the reader.
func retriesOpt(retries bool) int {
	if retries {
		return 0
	}
	return -1
}

// linTarget is a backend under test and the faults it takes.
type linTarget struct {
	tenants  []string
	duration time.Duration // of the run; 0 for EPHEMERAL_LINEAR_DURATION or its default
	// newStore returns the store of one client, named name: on Redis a backend on a go-redis
	// client of its own.
	newStore func(t *testing.T, name string) *ephemeral.Store[string, string]
	nodes    []*redistest.Server // the Redis servers, for faults; none on memstore
	admin    []*redis.Client     // a client of each node, not to be killed
	restart  func(rng *rand.Rand)
}

// redisTarget returns the target of nodes, on clients that newClient makes (retries for the
// reader only).
func redisTarget(t *testing.T, nodes []*redistest.Server, newClient func(name string, retries bool) redis.UniversalClient) *linTarget {
	tg := &linTarget{nodes: nodes, tenants: linTenants(nil)}
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, ReadTimeout: 5 * time.Second})
		t.Cleanup(func() { c.Close() })
		tg.admin = append(tg.admin, c)
	}
	prefix := testPrefix()
	tg.newStore = func(t *testing.T, name string) *ephemeral.Store[string, string] {
		c := newClient(name, name == linClientPrefix+"reader")
		b := redisstore.New(c, redisstore.WithKeyPrefix(prefix), redisstore.WithPollInterval(200*time.Millisecond))
		t.Cleanup(func() {
			b.Close()
			c.Close()
		})
		return newStore(t, b, linStoreID, ephemeral.Limits{})
	}
	return tg
}

// linTenants returns the tenants of the test: on a cluster (admin, a client of each master)
// one whose hash slot is on each master, so that every master serves a tenant.
func linTenants(admin []*redis.Client) []string {
	if admin == nil {
		return []string{"t0", "t1", "t2"}
	}
	tenants := make([]string, len(admin))
	for i := 0; slices.Contains(tenants, ""); i++ {
		name := "t" + strconv.Itoa(i)
		slot, err := admin[0].ClusterKeySlot(context.Background(), "{"+linStoreID+":"+name+"}").Result()
		if err != nil {
			panic(err)
		}
		if n := clusterNodeOf(int(slot), len(admin)); tenants[n] == "" {
			tenants[n] = name
		}
	}
	return tenants
}

// clusterNodeOf returns the node of startCluster that serves slot.
func clusterNodeOf(slot, nodes int) int { return slot * nodes / 16384 }

// startCluster starts a Redis Cluster of three masters without replicas, its own so that the
// test may pause and restart them; node i serves the slots from i*16384/3.
func startCluster(t *testing.T) []*redistest.Server {
	nodes, _ := startClusterNodes(t, 3, "5000")
	return nodes
}

// startClusterNodes is startCluster with n masters and the nodes' cluster-node-timeout (ms),
// and it returns the nodes' cluster bus ports too.
func startClusterNodes(t *testing.T, n int, nodeTimeout string) ([]*redistest.Server, []string) {
	nodes := make([]*redistest.Server, n)
	buses := make([]string, n)
	for i := range nodes {
		buses[i] = redistest.FreePort(t)
		nodes[i] = redistest.StartServer(t, "--enable-debug-command", "local", "--cluster-enabled", "yes",
			"--cluster-port", buses[i], "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", nodeTimeout)
	}
	admin := make([]*redis.Client, n)
	ctx := t.Context()
	for i, s := range nodes {
		admin[i] = redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
		defer admin[i].Close()
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := admin[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("cluster addslotsrange: %v", err)
		}
	}
	for i := 1; i < n; i++ {
		if err := admin[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", nodes[i].Port, buses[i]).Err(); err != nil {
			t.Fatalf("cluster meet: %v", err)
		}
	}
	waitClusterOK(t, admin)
	return nodes, buses
}

// waitClusterOK waits until every node reports the cluster ok, with all slots and nodes.
func waitClusterOK(t *testing.T, admin []*redis.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok := true
		for _, c := range admin {
			info, err := c.ClusterInfo(ctx).Result()
			ok = ok && err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_slots_ok:16384") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(admin)))
		}
		if ok {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the cluster is not ok after 30 s")
		}
	}
}

// startSentinel starts a Sentinel that monitors master as "lin", never failing it over during
// the test.
func startSentinel(t *testing.T, master *redistest.Server) *redistest.Server {
	s := redistest.NewServer(t)
	s.Conf = s.Dir + "/sentinel.conf"
	s.Args = []string{"--sentinel"}
	conf := fmt.Sprintf("sentinel monitor lin 127.0.0.1 %s 1\nsentinel down-after-milliseconds lin 600000\n", master.Port)
	if err := os.WriteFile(s.Conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// linRun is one run of the test on a target.
type linRun struct {
	tg      *linTarget
	rng     *rand.Rand
	t0      time.Time
	stores  []*ephemeral.Store[string, string] // one per client
	obs     *ephemeral.Store[string, string]   // the reader's and the snapshots'
	readers []*linReader                       // one per tenant, started before the first call
	uniq    atomic.Int64                       // makes values, TTLs and reasons unique

	mu       sync.Mutex // guards problems
	problems []string
	stats    linStats
}

type linStats struct {
	histories, ops, unknown, settled, events, overflows int
	deadlines                                           int // unknown outcomes by a passed deadline; the others lost their connection
	minOps, maxOps                                      int
	kills, sleeps, restarts, touchManys                 atomic.Int64
	check                                               time.Duration
}

func (r *linRun) now() int64 { return int64(time.Since(r.t0)) }

// problem records a violation of the contract; the run goes on to the next history.
func (r *linRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// fail fails the test with the run's problems.
func (r *linRun) fail(t *testing.T) {
	t.Helper()
	const most = 20
	for i, p := range r.problems {
		if i == most {
			t.Errorf("... and %d more", len(r.problems)-most)
			break
		}
		t.Error(p)
	}
}

// runLinear runs the linearizability test on tg for EPHEMERAL_LINEAR_DURATION (1 s by
// default), in segments of at most 10 s. In each segment linWorkers workers, two per client,
// make random calls (upserts, plain and conditional, touches, quiet touches, removes, gets) on
// linKeys keys of linTenantCount tenants, each call with a deadline, recording its start, end
// and result; a call that fails with an error other than a ConflictError has an unknown
// outcome. Meanwhile, on Redis, random connections of the clients are killed (CLIENT KILL, every
// 20 to 180 ms) and a random node pauses once (DEBUG SLEEP, 100 to 500 ms). Then the workers
// stop and a snapshot of each tenant is taken; the history of each tenant in the segment,
// from the snapshot before it to the one after, must be:
//
//   - linearizable as the clients saw it, partitioned by key (linKeyModel), each call of unknown
//     outcome open-ended (return time infinite) and possibly applied;
//   - matched by the events of a reader started before the first call: each event is the
//     change of exactly one call, versions contiguous, and every call that returned a change has
//     its event (matchEvents); a call of unknown outcome has at most one;
//   - linearizable as a whole tenant (linTenantModel) once each unknown outcome is settled by
//     the events (patch), every change taking the next version: so the order the reader
//     received the changes in is the order of one linearization.
//
// Between segments a node restarts without persistence (on a cluster, one master): the state
// of its tenants is lost, and instead of linearizability across the restart the test expects
// what the contract says: the reader gets one overflow event from its last cursor into a new
// epoch, and the next history starts from an empty tenant. The other tenants of a cluster go on
// unchanged.
func runLinear(t *testing.T, tg *linTarget) *linRun {
	duration := tg.duration
	if duration == 0 {
		duration = envDurationOr(t, envLinear, time.Second)
	}
	seg := min(linSegmentMax, max(duration/2, 50*time.Millisecond))
	segments := int((duration + seg - 1) / seg)
	if tg.restart != nil {
		segments = max(segments, 2)
	}
	seed := time.Now().UnixNano()
	r := &linRun{tg: tg, rng: rand.New(rand.NewPCG(uint64(seed), 0)), t0: time.Now(), stats: linStats{minOps: math.MaxInt}}
	t.Logf("seed %d, %d segments of %v, tenants %v", seed, segments, seg, tg.tenants)
	for i := range linClients {
		r.stores = append(r.stores, tg.newStore(t, linClientPrefix+"c"+strconv.Itoa(i)))
	}
	r.obs = tg.newStore(t, linClientPrefix+"reader")
	for _, tenant := range tg.tenants {
		rd, err := r.obs.Reader(t.Context(), ephemeral.WithTenant(tenant))
		if err != nil {
			t.Fatalf("reader of %q: %v", tenant, err)
		}
		lr := startLinReader(r, rd)
		t.Cleanup(lr.close)
		r.readers = append(r.readers, lr)
	}

	finals := make([]ephemeral.Snapshot[string, string], len(tg.tenants))
	for s := range segments {
		if s > 0 && tg.restart != nil {
			tg.restart(r.rng)
			r.stats.restarts.Add(1)
		}
		inits := make([]ephemeral.Snapshot[string, string], len(tg.tenants))
		initOps := make([][]*linOp, len(tg.tenants))
		for i := range tg.tenants {
			inits[i], initOps[i] = r.snapshot(t, i, linInit)
			if s > 0 {
				r.checkRestart(t, i, finals[i], inits[i])
			}
		}
		ops := r.segment(t, seg)
		for i := range tg.tenants {
			var finalOps []*linOp
			finals[i], finalOps = r.snapshot(t, i, linGet)
			r.check(t, i, inits[i], finals[i], slices.Concat(initOps[i], ops[i], finalOps))
		}
		if len(r.problems) > 0 {
			break
		}
	}
	for i, lr := range r.readers {
		if extra := lr.rest(); len(r.problems) == 0 && len(extra) > 0 {
			r.problem("reader of %q: events after the final snapshot, when no call was made: %+v", tg.tenants[i], extra[0].ev)
		}
	}
	avg := 0
	if r.stats.histories > 0 {
		avg = r.stats.ops / r.stats.histories
	}
	t.Logf("%v: %d histories checked (%d to %d calls, %d on average, a TouchMany of 2 or 3 keys counted as a call a key: %d of them), %d calls of unknown outcome (%d past their deadline, %d with a lost connection; %d applied, as the reader's events show), %d events, %d overflows at restarts; faults: %d connections killed, %d DEBUG SLEEPs, %d restarts; checks took %v; violations: %d",
		time.Since(r.t0).Round(time.Millisecond), r.stats.histories, r.stats.minOps, r.stats.maxOps, avg, r.stats.touchManys.Load(), r.stats.unknown, r.stats.deadlines, r.stats.unknown-r.stats.deadlines, r.stats.settled,
		r.stats.events, r.stats.overflows, r.stats.kills.Load(), r.stats.sleeps.Load(), r.stats.restarts.Load(), r.stats.check.Round(time.Millisecond), len(r.problems))
	return r
}

// snapshot takes a snapshot of tenant i while no call is made, retrying while the server is
// unreachable, and returns it with its entries as operations of kind: linInit (the start of a
// history) or linGet (its end), and the tenant's version (linInitSeq or linSeq).
func (r *linRun) snapshot(t *testing.T, i int, kind linKind) (ephemeral.Snapshot[string, string], []*linOp) {
	var snap ephemeral.Snapshot[string, string]
	var call, ret int64
	retry(t, "snapshot", func(ctx context.Context) (err error) {
		call = r.now()
		snap, err = r.obs.Snapshot(ctx, ephemeral.WithTenant(r.tg.tenants[i]))
		ret = r.now()
		return err
	})
	cur, err := backend.ParseCursor(snap.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	var ops []*linOp
	for k := range linKeyNames {
		o := &linOp{client: linCheckerClient, in: linInput{kind: kind, key: k}, call: call, ret: ret}
		for _, e := range snap.Entries {
			if e.Key == linKeyNames[k] {
				o.out = linOutput{found: true, value: e.Value, version: e.Version}
			}
		}
		ops = append(ops, o)
	}
	seq := linSeq
	if kind == linInit {
		seq = linInitSeq
	}
	ops = append(ops, &linOp{client: linCheckerClient, in: linInput{kind: seq, key: -1, seq: cur.Seq}, call: call, ret: ret})
	return snap, ops
}

// checkRestart checks tenant i after a restart: if its state was lost (a new epoch), the reader
// gets one overflow from the last cursor of the old epoch to the start of the new one;
// otherwise the state is unchanged.
func (r *linRun) checkRestart(t *testing.T, i int, before, after ephemeral.Snapshot[string, string]) {
	old, _ := backend.ParseCursor(before.Cursor)
	cur, _ := backend.ParseCursor(after.Cursor)
	tenant := r.tg.tenants[i]
	if cur.Epoch == old.Epoch {
		if after.Cursor != before.Cursor || !slices.Equal(after.Entries, before.Entries) {
			r.problem("tenant %q survived a restart in epoch %s, but changed: %+v, then %+v", tenant, cur.Epoch, before, after)
		}
		return
	}
	if cur.Seq != 0 || len(after.Entries) != 0 {
		r.problem("tenant %q after the restart: %+v, want an empty tenant in a new epoch", tenant, after)
	}
	evs, err := r.readers[i].next(t, 1)
	switch {
	case err != nil:
		r.problem("reader of %q after the restart: %v", tenant, err)
	case evs[0].ev.Kind != ephemeral.EventOverflow || evs[0].ev.After != before.Cursor || evs[0].ev.Cursor != after.Cursor:
		r.problem("reader of %q after the restart: %+v, want an overflow from %s to %s", tenant, evs[0].ev, before.Cursor, after.Cursor)
	default:
		r.stats.overflows++
	}
}

// segment runs the workers and the faults for d and returns the calls of each tenant.
func (r *linRun) segment(t *testing.T, d time.Duration) [][]*linOp {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var wg sync.WaitGroup
	if len(r.tg.nodes) > 0 {
		killRng, pauseRng := rand.New(rand.NewPCG(r.rng.Uint64(), 1)), rand.New(rand.NewPCG(r.rng.Uint64(), 2))
		wg.Go(func() { r.kill(ctx, killRng) })
		wg.Go(func() { r.pause(ctx, pauseRng, d) })
	}
	opsOf := make([][][]*linOp, linWorkers)
	var errs sync.Map
	for w := range linWorkers {
		rng := rand.New(rand.NewPCG(r.rng.Uint64(), uint64(w)))
		wg.Go(func() {
			opsOf[w] = r.work(ctx, w, rng, func(err error) { errs.Store(err.Error(), true) })
		})
	}
	wg.Wait()
	errs.Range(func(k, _ any) bool {
		r.problem("a call failed with an error that must not happen here: %v", k)
		return true
	})
	ops := make([][]*linOp, len(r.tg.tenants))
	for _, byTenant := range opsOf {
		for i, o := range byTenant {
			ops[i] = append(ops[i], o...)
		}
	}
	return ops
}

// work makes calls until ctx is done and returns them by tenant. Each call has a deadline of
// its own, not ctx: the last calls end as they would.
func (r *linRun) work(ctx context.Context, w int, rng *rand.Rand, unexpected func(error)) [][]*linOp {
	s := r.stores[w/linWorkersPer]
	ops := make([][]*linOp, len(r.tg.tenants))
	seen := make([][linKeys]uint64, len(r.tg.tenants)) // the last version seen of each key
	tick := time.NewTicker(linPace)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ops
		case <-tick.C:
		}
		ti := rng.IntN(len(r.tg.tenants))
		o := r.drawOp(w, rng, seen[ti][:])
		cctx, cancel := context.WithTimeout(context.Background(), linCallTimeout)
		o.call = r.now()
		calls := r.do(cctx, s, r.tg.tenants[ti], o)
		ret := r.now()
		cancel()
		for _, o := range calls {
			var ce *ephemeral.ConflictError
			switch {
			case o.err == nil:
				o.ret = ret
			case errors.As(o.err, &ce):
				o.ret = ret
				o.out = linOutput{status: linConflict, found: ce.Live, version: ce.Version}
			default:
				o.ret = math.MaxInt64
				o.out = linOutput{status: linUnknown}
				if contractError(o.err) {
					unexpected(o.err)
				}
			}
			if o.out.version != 0 {
				seen[ti][o.in.key] = o.out.version
			}
			ops[ti] = append(ops[ti], o)
		}
	}
}

// contractError reports whether err is one of the store's own errors, which a call of this test
// must never get: it is not a lost connection or a deadline.
func contractError(err error) bool {
	for _, e := range []error{ephemeral.ErrCapacity, ephemeral.ErrPayloadTooLarge, ephemeral.ErrInvalidKey, ephemeral.ErrInvalidTenant,
		ephemeral.ErrInvalidTTL, ephemeral.ErrInvalidConfig, ephemeral.ErrClosed, ephemeral.ErrEncode, ephemeral.ErrDecode, ephemeral.ErrCorrupt} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// drawOp draws a call: 30% gets, 30% upserts (2/5 plain, then IfNew, IfExists, IfVersion),
// 15% touches and 5% quiet touches (half with IfVersion; of the others a third touch one or
// two other keys too, in one TouchMany), 20% removes (half with IfVersion). A version
// condition mostly names the last version the worker saw of the key, so that some hold.
func (r *linRun) drawOp(w int, rng *rand.Rand, seen []uint64) *linOp {
	o := &linOp{client: w, in: linInput{key: rng.IntN(linKeys)}}
	n := r.uniq.Add(1)
	ifVersion := func() backend.Condition {
		v := seen[o.in.key]
		if rng.IntN(4) == 0 {
			v = uint64(max(0, int64(v)+int64(rng.IntN(3))-1))
		}
		return backend.Condition{Kind: backend.CondIfVersion, Version: v}
	}
	switch p := rng.IntN(100); {
	case p < 30:
		o.in.kind = linGet
	case p < 60:
		o.in.kind = linUpsert
		o.in.value = "w" + strconv.Itoa(w) + "-" + strconv.FormatInt(n, 10)
		switch rng.IntN(5) {
		case 2:
			o.in.cond.Kind = backend.CondIfNew
		case 3:
			o.in.cond.Kind = backend.CondIfExists
		case 4:
			o.in.cond = ifVersion()
		}
	case p < 80:
		o.in.kind = linTouch
		if p >= 75 {
			o.in.kind = linQuiet
		}
		if rng.IntN(2) == 0 {
			o.in.cond = ifVersion()
		} else if rng.IntN(3) == 0 {
			n := 1 + rng.IntN(2)
			for _, k := range rng.Perm(linKeys) {
				if k != o.in.key && len(o.more) < n {
					o.more = append(o.more, k)
				}
			}
		}
	default:
		o.in.kind = linRemove
		o.reason = "w" + strconv.Itoa(w) + "-" + strconv.FormatInt(n, 10)
		if rng.IntN(2) == 0 {
			o.in.cond = ifVersion()
		}
	}
	// Unique TTLs tell touch events apart (ExpiresAt - At); an hour outlasts any run.
	o.ttl = time.Hour + time.Duration(n)*time.Millisecond
	return o
}

// do makes the call o on s and records its result: in o, or for a TouchMany (o.more) in one
// call of its own for each key, all with o's times, which it returns.
func (r *linRun) do(ctx context.Context, s *ephemeral.Store[string, string], tenant string, o *linOp) []*linOp {
	if len(o.more) > 0 {
		keys := []string{linKeyNames[o.in.key]}
		for _, k := range o.more {
			keys = append(keys, linKeyNames[k])
		}
		opts := []ephemeral.TouchOption{ephemeral.WithTenant(tenant), ephemeral.WithTTL(o.ttl)}
		if o.in.kind == linQuiet {
			opts = append(opts, ephemeral.Quiet())
		}
		res, err := s.TouchMany(ctx, keys, opts...)
		r.stats.touchManys.Add(1)
		calls := make([]*linOp, len(keys))
		for i := range keys {
			c := *o
			c.more, c.err = nil, err
			if i > 0 {
				c.in.key = o.more[i-1]
			}
			if err == nil {
				c.touch = res[i]
				c.out = linOutput{found: res[i].OK, version: res[i].Version}
			}
			calls[i] = &c
		}
		return calls
	}
	key, ten := linKeyNames[o.in.key], ephemeral.WithTenant(tenant)
	var cond []ephemeral.CondOption
	switch o.in.cond.Kind {
	case backend.CondIfNew:
		cond = append(cond, ephemeral.IfNew())
	case backend.CondIfExists:
		cond = append(cond, ephemeral.IfExists())
	}
	switch o.in.kind {
	case linGet:
		e, ok, err := s.Get(ctx, key, ten)
		o.out, o.err = linOutput{found: ok, value: e.Value, version: e.Version}, err
	case linUpsert:
		opts := []ephemeral.UpsertOption{ten, ephemeral.WithTTL(o.ttl)}
		for _, c := range cond {
			opts = append(opts, c)
		}
		if o.in.cond.Kind == backend.CondIfVersion {
			opts = append(opts, ephemeral.IfVersion(o.in.cond.Version))
		}
		o.entry, o.err = s.Upsert(ctx, key, o.in.value, opts...)
		o.out = linOutput{found: true, version: o.entry.Version}
	case linTouch, linQuiet:
		opts := []ephemeral.TouchOption{ten, ephemeral.WithTTL(o.ttl)}
		if o.in.kind == linQuiet {
			opts = append(opts, ephemeral.Quiet())
		}
		if o.in.cond.Kind == backend.CondIfVersion {
			opts = append(opts, ephemeral.IfVersion(o.in.cond.Version))
		}
		o.touch, o.err = s.Touch(ctx, key, opts...)
		o.out = linOutput{found: o.touch.OK, version: o.touch.Version}
	case linRemove:
		opts := []ephemeral.RemoveOption{ten, ephemeral.WithReason(o.reason)}
		if o.in.cond.Kind == backend.CondIfVersion {
			opts = append(opts, ephemeral.IfVersion(o.in.cond.Version))
		}
		var removed bool
		removed, o.err = s.Remove(ctx, key, opts...)
		o.out = linOutput{found: removed}
	}
	return []*linOp{o}
}

// kill kills a random connection of the clients on a random node every 20 to 180 ms until ctx
// is done. The admin connections are not the clients'.
func (r *linRun) kill(ctx context.Context, rng *rand.Rand) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(20+rng.IntN(160)) * time.Millisecond):
		}
		c := r.tg.admin[rng.IntN(len(r.tg.admin))]
		list, err := c.ClientList(ctx).Result()
		if err != nil {
			continue
		}
		var ids []string
		for _, line := range strings.Split(list, "\n") {
			var id, name string
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "id="); ok {
					id = v
				}
				if v, ok := strings.CutPrefix(f, "name="); ok {
					name = v
				}
			}
			if strings.HasPrefix(name, linClientPrefix) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			continue
		}
		if n, err := c.ClientKillByFilter(ctx, "ID", ids[rng.IntN(len(ids))]).Result(); err == nil {
			r.stats.kills.Add(n)
		}
	}
}

// pause makes a random node sleep (DEBUG SLEEP) for 100 to 500 ms, once, at a random moment of
// the first two thirds of the segment of length d.
func (r *linRun) pause(ctx context.Context, rng *rand.Rand, d time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(rng.Int64N(int64(d*2/3) + 1))):
	}
	c := r.tg.admin[rng.IntN(len(r.tg.admin))]
	secs := fmt.Sprintf("%.3f", float64(100+rng.IntN(400))/1000)
	if err := c.Do(context.Background(), "DEBUG", "SLEEP", secs).Err(); err != nil {
		r.problem("DEBUG SLEEP %s: %v", secs, err)
		return
	}
	r.stats.sleeps.Add(1)
}

// check checks the history ops of tenant i between the snapshots init and final.
func (r *linRun) check(t *testing.T, i int, init, final ephemeral.Snapshot[string, string], ops []*linOp) {
	tenant := r.tg.tenants[i]
	start, _ := backend.ParseCursor(init.Cursor)
	end, _ := backend.ParseCursor(final.Cursor)
	what := fmt.Sprintf("tenant %q, %d calls from %s to %s", tenant, len(ops), init.Cursor, final.Cursor)
	if end.Epoch != start.Epoch {
		r.problem("%s: the epoch changed without a restart", what)
		return
	}
	events, err := r.readers[i].next(t, int(end.Seq-start.Seq))
	if err != nil {
		r.problem("%s: reader: %v", what, err)
		return
	}
	for j, e := range events {
		want := backend.Cursor{Epoch: start.Epoch, Seq: start.Seq + uint64(j) + 1}
		if e.ev.Version != want.Seq || e.ev.Cursor != want.String() {
			r.problem("%s: reader event %d: %+v, want version %d of epoch %s", what, j, e.ev, want.Seq, want.Epoch)
			return
		}
	}
	t0 := time.Now()
	for _, p := range matchEvents(ops, events) {
		r.problem("%s: %s", what, p)
	}
	if err := checkLinearizable(linKeyModel.ToModel(), operations(ops), what+", per key, as the clients saw it"); err != nil {
		r.problem("%v", err)
	}
	if len(r.problems) == 0 {
		if err := checkLinearizable(linTenantModel, patch(ops), what+", whole tenant, outcomes settled by the reader"); err != nil {
			r.problem("%v", err)
		}
	}
	r.stats.check += time.Since(t0)
	r.stats.histories++
	r.stats.ops += len(ops)
	r.stats.minOps, r.stats.maxOps = min(r.stats.minOps, len(ops)), max(r.stats.maxOps, len(ops))
	r.stats.events += len(events)
	for _, o := range ops {
		if o.out.status == linUnknown {
			r.stats.unknown++
			if errors.Is(o.err, context.DeadlineExceeded) {
				r.stats.deadlines++
			}
			if o.ev != nil {
				r.stats.settled++
			}
		}
	}
}

// linReader receives the events of one reader in a goroutine of its own, with the time each
// arrived.
type linReader struct {
	r       *ephemeral.Reader[string, string]
	run     *linRun
	done    chan struct{}
	changed chan struct{}

	mu     sync.Mutex
	events []linEvent
	err    error
	pos    int // events before pos were handed out by next
}

func startLinReader(run *linRun, r *ephemeral.Reader[string, string]) *linReader {
	lr := &linReader{r: r, run: run, done: make(chan struct{}), changed: make(chan struct{}, 1)}
	go func() {
		defer close(lr.done)
		for {
			ev, err := r.Recv(context.Background())
			at := run.now()
			lr.mu.Lock()
			if err != nil {
				lr.err = err
			} else {
				lr.events = append(lr.events, linEvent{ev: ev, at: at})
			}
			lr.mu.Unlock()
			select {
			case lr.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return lr
}

// next waits for the next n events and hands them out.
func (lr *linReader) next(t *testing.T, n int) ([]linEvent, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitFor)
	defer cancel()
	for {
		lr.mu.Lock()
		have, err := len(lr.events)-lr.pos, lr.err
		if have >= n {
			evs := lr.events[lr.pos : lr.pos+n]
			lr.pos += n
			lr.mu.Unlock()
			return evs, nil
		}
		lr.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("stopped after %d of %d events: %w", have, n, err)
		}
		select {
		case <-lr.changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d events after %v", have, n, 2*waitFor)
		}
	}
}

// rest returns the events received but not handed out.
func (lr *linReader) rest() []linEvent {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.events[lr.pos:]
}

func (lr *linReader) close() {
	lr.r.Close()
	<-lr.done
}

// TestLinearizabilityCheckerCatches runs the test on memstore behind a backend with a known
// fault, to show that the checks find it: a Get that sometimes returns the entry it returned
// before (a stale read: porcupine's visualisation is written to the file the failure names),
// and an Upsert applied twice (two events of one call). A backend that loses replies (applies a
// write and returns an error, or returns an error without applying it) breaks no rule: the
// check must pass.
func TestLinearizabilityCheckerCatches(t *testing.T) {
	for _, c := range []struct {
		fault string
		want  string // in a problem; "" for none
	}{
		{"stale reads", "porcupine's visualisation: "},
		{"upserts applied twice", "two events of one call"},
		{"lost replies", ""},
	} {
		t.Run(strings.ReplaceAll(c.fault, " ", "-"), func(t *testing.T) {
			b := memstore.New()
			t.Cleanup(func() { b.Close() })
			fb := &faultyBackend{Backend: b, fault: c.fault}
			r := runLinear(t, &linTarget{
				tenants:  linTenants(nil),
				duration: 300 * time.Millisecond,
				newStore: func(t *testing.T, _ string) *ephemeral.Store[string, string] {
					return newStore(t, fb, linStoreID, ephemeral.Limits{})
				},
			})
			if c.want == "" {
				r.fail(t)
				if fb.faults.Load() == 0 {
					t.Fatal("no fault was injected")
				}
				return
			}
			// Every history the fault broke has a visualisation: none is left in the
			// temporary directory.
			t.Cleanup(func() {
				for _, p := range r.problems {
					if _, path, ok := strings.Cut(p, "porcupine's visualisation: "); ok {
						os.Remove(path)
					}
				}
			})
			i := slices.IndexFunc(r.problems, func(p string) bool { return strings.Contains(p, c.want) })
			if i < 0 {
				t.Fatalf("%d faults injected; no problem says %q: %q", fb.faults.Load(), c.want, r.problems)
			}
			t.Logf("found: %.300s", r.problems[i])
			if _, path, ok := strings.Cut(r.problems[i], "porcupine's visualisation: "); ok {
				html, err := os.ReadFile(path)
				if err != nil || !strings.Contains(string(html), "<html") {
					t.Fatalf("visualisation %s: %v, %d bytes", path, err, len(html))
				}
			}
		})
	}
}

// faultyBackend is a backend with a fault, for TestLinearizabilityCheckerCatches.
type faultyBackend struct {
	backend.Backend
	fault  string
	faults atomic.Int64
	calls  atomic.Int64
	mu     sync.Mutex
	last   map[string]backend.Entry // the last entry Get returned, by tenant and key
}

func (b *faultyBackend) Open(id string, l backend.Limits) (backend.Store, error) {
	s, err := b.Backend.Open(id, l)
	return &faultyStore{Store: s, b: b}, err
}

type faultyStore struct {
	backend.Store
	b *faultyBackend
}

// every reports whether this call is the n-th since the last fault, and counts it as a fault.
func (b *faultyBackend) every(n int64, fault string) bool {
	if b.fault != fault || b.calls.Add(1)%n != 0 {
		return false
	}
	b.faults.Add(1)
	return true
}

var errLostReply = errors.New("faulty backend: reply lost")

func (s *faultyStore) Get(ctx context.Context, tenant, key string) (backend.Entry, bool, error) {
	e, ok, err := s.Store.Get(ctx, tenant, key)
	b := s.b
	if b.fault != "stale reads" || err != nil {
		return e, ok, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil {
		b.last = map[string]backend.Entry{}
	}
	k := tenant + "/" + key
	if old, had := b.last[k]; had && b.every(3, "stale reads") {
		return old, true, nil
	}
	if ok {
		b.last[k] = e
	}
	return e, ok, err
}

func (s *faultyStore) Upsert(ctx context.Context, tenant string, req backend.UpsertRequest) (backend.Entry, error) {
	if s.b.every(5, "lost replies") {
		return backend.Entry{}, errLostReply
	}
	e, err := s.Store.Upsert(ctx, tenant, req)
	if err == nil && s.b.every(1, "upserts applied twice") {
		return s.Store.Upsert(ctx, tenant, req)
	}
	if err == nil && s.b.every(4, "lost replies") {
		return backend.Entry{}, errLostReply
	}
	return e, err
}

func (s *faultyStore) Remove(ctx context.Context, tenant string, req backend.RemoveRequest) (bool, error) {
	ok, err := s.Store.Remove(ctx, tenant, req)
	if s.b.every(3, "lost replies") {
		return false, errLostReply
	}
	return ok, err
}
