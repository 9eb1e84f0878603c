package redisstore

import (
	"context"
	"sync"
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

// tickAll runs the tick script of every pump now.
func (b *Backend) tickAll(ctx context.Context) error {
	b.mu.Lock()
	pumps := make([]*pump, 0, len(b.pumps))
	for _, p := range b.pumps {
		pumps = append(pumps, p)
	}
	b.mu.Unlock()
	for _, p := range pumps {
		if _, err := runTick(ctx, b.scripts, p.keys, p.st.limits); err != nil {
			return err
		}
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
