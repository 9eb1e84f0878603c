package lock

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness is a backend under test and the way to move its time.
type harness struct {
	b ephemeral.Backend
	// advance moves the backend's clock forward by d; on a real server it sleeps.
	advance func(d time.Duration)
	real    bool
	// client is the Redis client of a Redis backend, nil on memstore.
	client redis.UniversalClient
	prefix string // the key prefix of a real server's backend
}

// ttl is a lease TTL that runs out only when the test advances the clock by it (or, on a real
// server, waits for it).
func (h harness) ttl() time.Duration {
	if h.real {
		return 600 * time.Millisecond
	}
	return 10 * time.Second
}

// backends are the harnesses every shared test runs on; those of real servers skip unless
// their environment variable is set.
var backends = []struct {
	name string
	new  func(t testing.TB) harness
}{
	{"memstore", newMemstore},
	{"miniredis", newMiniredis},
	{"redis", newRedis},
	{"cluster", newCluster},
}

// forEach runs test on every backend.
func forEach(t *testing.T, test func(t *testing.T, h harness)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b.new(t)) })
	}
}

// start is the fake clocks' start.
var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newMemstore(t testing.TB) harness {
	clock := memstore.NewFakeClock(start)
	b := memstore.New(memstore.WithClock(clock))
	t.Cleanup(func() { b.Close() })
	return harness{b: b, advance: clock.Advance}
}

// newMiniredis returns a backend on a miniredis whose clock (TIME and key TTLs) moves only when
// the test advances it; the pumps tick every 20 ms of real time, and see the new time then.
func newMiniredis(t testing.TB) harness {
	m := miniredis.RunT(t)
	now := start
	m.SetTime(now)
	m.ClockTTL(true)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	b := redisstore.New(client, redisstore.WithPollInterval(20*time.Millisecond))
	t.Cleanup(func() {
		b.Close()
		client.Close()
	})
	var mu sync.Mutex
	return harness{b: b, client: client, advance: func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
		m.SetTime(now)
	}}
}

func newRedis(t testing.TB) harness { return newOn(t, redistest.Client(t)) }

func newCluster(t testing.TB) harness { return newOn(t, redistest.Cluster(t)) }

// newOn returns a backend on client with a key prefix of its own, whose keys it deletes at
// the end.
func newOn(t testing.TB, client redis.UniversalClient) harness {
	prefix := redistest.Prefix("ephemeral-locktest")
	b := redisstore.New(client, redisstore.WithKeyPrefix(prefix), redisstore.WithPollInterval(100*time.Millisecond))
	t.Cleanup(func() {
		b.Close()
		_, _ = redistest.DeleteKeys(context.Background(), client, prefix)
	})
	return harness{b: b, client: client, real: true, advance: time.Sleep, prefix: prefix}
}

// locker returns a Locker on h with the harness's TTL, fast retries and opts.
func (h harness) locker(t testing.TB, opts ...Option) *Locker {
	t.Helper()
	l, err := New(h.b, append([]Option{WithTTL(h.ttl()), WithRetry(time.Millisecond, 20*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l
}
