package redisstore

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is a backend under test with what the tests need to reach around it.
type fixture struct {
	b       *Backend
	client  redis.UniversalClient
	mini    *miniredis.Miniredis // nil on a real server
	advance func(t testing.TB, d time.Duration)
	real    bool
	// shift moves the miniredis clock (TIME and key TTLs) without running the pumps' ticks.
	shift func(d time.Duration)
}

// newMini returns a backend on a fresh miniredis whose clock (TIME, and key TTLs with
// ClockTTL) only moves when the test advances it. Advancing also runs the tick of every pump,
// as a pump's timer runs in real time and would otherwise fire only at the server's due time.
func newMini(t testing.TB, opts ...Option) fixture {
	m := miniredis.RunT(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	m.SetTime(now)
	m.ClockTTL(true)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	b := New(client, append([]Option{WithPollInterval(50 * time.Millisecond)}, opts...)...)
	t.Cleanup(func() {
		b.Close()
		client.Close()
	})
	var mu sync.Mutex
	shift := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
		m.SetTime(now)
	}
	advance := func(t testing.TB, d time.Duration) {
		shift(d)
		if err := b.tickAll(context.Background()); err != nil {
			t.Fatalf("tick: %v", err)
		}
	}
	return fixture{b: b, client: client, mini: m, advance: advance, shift: shift}
}

// newReal returns a backend on the server named by EPHEMERAL_REDIS_ADDR, with a key prefix of
// its own, or skips the test.
func newReal(t testing.TB, opts ...Option) fixture { return newOn(t, redistest.Client(t), opts) }

// newOwn returns a backend on a redis-server of the test's own, started with args (stopped at
// the end), or skips unless the real-server tests run (EPHEMERAL_REDIS_ADDR set): for the
// tests that change the server's configuration.
func newOwn(t testing.TB, args ...string) fixture {
	if os.Getenv(redistest.EnvAddr) == "" {
		t.Skipf("set %s to run the real-server tests (this one starts a redis-server of its own)", redistest.EnvAddr)
	}
	srv := redistest.StartServer(t, args...)
	return newOn(t, redis.NewClient(&redis.Options{Addr: srv.Addr()}), nil)
}

// newCluster returns a backend on the cluster named by EPHEMERAL_REDIS_CLUSTER, or skips.
func newCluster(t testing.TB, opts ...Option) fixture {
	return newOn(t, redistest.Cluster(t), opts)
}

// newSentinel returns a backend on the master that the Sentinels named by
// EPHEMERAL_REDIS_SENTINEL manage, through go-redis's failover client, or skips.
func newSentinel(t testing.TB, opts ...Option) fixture {
	return newOn(t, redistest.Sentinel(t), opts)
}

// newOn returns a backend on client (closed when the test ends) with a key prefix of its own,
// whose keys it deletes at the end.
func newOn(t testing.TB, client redis.UniversalClient, opts []Option) fixture {
	prefix := redistest.Prefix("ephemeral-test")
	b := New(client, append([]Option{WithKeyPrefix(prefix), WithPollInterval(200 * time.Millisecond)}, opts...)...)
	t.Cleanup(func() {
		b.Close()
		deleteKeys(client, prefix)
		client.Close()
	})
	return fixture{b: b, client: client, real: true, advance: func(_ testing.TB, d time.Duration) { time.Sleep(d) }}
}

// deleteKeys removes the keys a test run left behind, on every master of a cluster.
func deleteKeys(client redis.UniversalClient, prefix string) {
	_, _ = redistest.DeleteKeys(context.Background(), client, prefix)
}

// scriptOf returns the script that a command of arguments a runs, as a function, with
// EVALSHA or with EVAL; nil for another command.
func scriptOf(a []any) *script {
	if len(a) < 2 {
		return nil
	}
	for _, s := range allScripts {
		switch a[0] {
		case "fcall":
			if a[1] == s.fn {
				return s
			}
		case "evalsha":
			if a[1] == s.sha {
				return s
			}
		case "eval":
			if a[1] == s.src {
				return s
			}
		}
	}
	return nil
}

// tickAll runs the tick script of every pump now, and has the pump read, as a pump does after
// its own tick (whose notice goes only to other backends).
func (b *Backend) tickAll(ctx context.Context) error {
	b.mu.Lock()
	pumps := make([]*pump, 0, len(b.pumps))
	for _, p := range b.pumps {
		pumps = append(pumps, p)
	}
	b.mu.Unlock()
	for _, p := range pumps {
		if _, err := runTick(ctx, b.scripts, p.keys, p.st.limits, b.watcherID); err != nil {
			return err
		}
		p.nudge()
	}
	return nil
}

// nudgeAll makes every pump read its tenant now, as they all do when the pub/sub connection
// is dialled again (after a failover, say).
func (b *Backend) nudgeAll() {
	b.mu.Lock()
	pumps := make([]*pump, 0, len(b.pumps))
	for _, p := range b.pumps {
		pumps = append(pumps, p)
	}
	b.mu.Unlock()
	for _, p := range pumps {
		p.nudge()
	}
}

// open opens the store "test" of f's backend with limits l, whose zero fields take their
// defaults.
func (f fixture) open(t testing.TB, l backend.Limits) *store {
	t.Helper()
	st, err := f.b.Open("test", l.WithDefaults())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return st.(*store)
}

// pumpCount returns the number of running pumps.
func (b *Backend) pumpCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pumps)
}

// cmdHook is a client hook that counts the commands match selects, alone or in pipelines; one
// made by holdFirst also holds the first of them (with the rest of its pipeline) until release
// is closed.
type cmdHook struct {
	match   func(redis.Cmder) bool
	n       atomic.Int64
	held    chan struct{} // closed when the first is held; nil: nothing is held
	release chan struct{}
	once    atomic.Bool
	ran     bool // hold the first after it ran, with its reply, rather than before it is sent
}

// countCmds returns a hook that counts the commands match selects.
func countCmds(match func(redis.Cmder) bool) *cmdHook { return &cmdHook{match: match} }

// holdFirst returns a hook that counts the commands match selects and holds the first of them.
func holdFirst(match func(redis.Cmder) bool) *cmdHook {
	return &cmdHook{match: match, held: make(chan struct{}), release: make(chan struct{})}
}

// holdFirstReply returns a hook that counts the commands match selects and holds the reply of
// the first of them: it ran on the server, and its caller waits.
func holdFirstReply(match func(redis.Cmder) bool) *cmdHook {
	h := holdFirst(match)
	h.ran = true
	return h
}

// heldWrite is a hook on a fixture's client that holds the reply of the first write call made
// with lateUpsert.
type heldWrite struct {
	*cmdHook
	armed atomic.Bool
}

// holdWrite adds a heldWrite to f's client.
func holdWrite(f fixture) *heldWrite {
	h := &heldWrite{}
	h.cmdHook = holdFirstReply(func(c redis.Cmder) bool { return h.armed.Load() && scriptOf(c.Args()) == writeScript })
	f.client.AddHook(h.cmdHook)
	return h
}

// lateUpsert starts an upsert of key in tenant ten whose reply h holds until h.release is
// closed, and returns once Redis has run it; the channel it returns is closed when the upsert
// has returned.
func (h *heldWrite) lateUpsert(t testing.TB, st backend.Store, ten, key string) <-chan struct{} {
	h.armed.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		upsert(t, st, ten, key, "v", time.Hour)
	}()
	<-h.held
	return done
}

// see counts the commands of a call or a pipeline, and holds the first that matches.
func (h *cmdHook) see(cmds ...redis.Cmder) {
	matched := false
	for _, cmd := range cmds {
		if h.match(cmd) {
			h.n.Add(1)
			matched = true
		}
	}
	if matched && h.held != nil && h.once.CompareAndSwap(false, true) {
		close(h.held)
		<-h.release
	}
}

func (h *cmdHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *cmdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.ran {
			err := next(ctx, cmd)
			h.see(cmd)
			return err
		}
		h.see(cmd)
		return next(ctx, cmd)
	}
}

func (h *cmdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.ran {
			err := next(ctx, cmds)
			h.see(cmds...)
			return err
		}
		h.see(cmds...)
		return next(ctx, cmds)
	}
}

// waitQueued waits until n calls of key k wait in b, behind one in flight.
func waitQueued[K comparable, Req, Res any](t *testing.T, b *batcher[K, Req, Res], k K, n int) {
	t.Helper()
	for deadline := time.Now().Add(eventWait); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		waiting := 0
		if q := b.queues[k]; q != nil {
			waiting = len(q.calls)
		}
		b.mu.Unlock()
		if waiting == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls wait behind the one in flight, want %d", waiting, n)
		}
	}
}

// recvErrs receives n results of calls from errs, and fails the test at the first error.
func recvErrs(t *testing.T, errs <-chan error, n int) {
	t.Helper()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
