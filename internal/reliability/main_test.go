package reliability

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The environment variables of the suite.
const (
	envRedis    = "EPHEMERAL_REDIS_ADDR"        // host:port of a standalone server
	envCluster  = "EPHEMERAL_REDIS_CLUSTER"     // comma-separated addresses of cluster nodes
	envCases    = "EPHEMERAL_RELIABILITY_CASES" // model cases per backend
	envDuration = "EPHEMERAL_FAULT_DURATION"    // traffic phase of the connection-kill test
	envLinear   = "EPHEMERAL_LINEAR_DURATION"   // run of the linearizability test, per target
)

// envInt returns the positive integer in the environment variable name, or def.
func envInt(t testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// envDurationOr returns the duration in the environment variable name, or def.
func envDurationOr(t testing.TB, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 30s", name, s)
	}
	return d
}

// strCodec encodes strings of letters, digits and '-' as JSON strings.
type strCodec struct{}

func (strCodec) Encode(dst []byte, v *string) ([]byte, error) {
	dst = append(dst, '"')
	dst = append(dst, *v...)
	return append(dst, '"'), nil
}

func (strCodec) Decode(src []byte, v *string) error {
	if len(src) < 2 || src[0] != '"' || src[len(src)-1] != '"' {
		return fmt.Errorf("not a plain JSON string: %q", src)
	}
	*v = string(src[1 : len(src)-1])
	return nil
}

// newStore returns a store of strings with the given ID and limits.
func newStore(t fataler, b ephemeral.Backend, id string, l ephemeral.Limits) *ephemeral.Store[string, string] {
	s, err := ephemeral.New(b, ephemeral.Config[string, string]{ID: id, TTL: time.Hour, Limits: l, Codec: strCodec{}})
	if err != nil {
		t.Fatalf("ephemeral.New: %v", err)
	}
	return s
}

// fataler is what setup helpers need of a *testing.T or a *rapid.T.
type fataler interface {
	Fatalf(format string, args ...any)
}

// start is the time fake clocks start at.
var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// target is a backend under test and the way to move its clock.
type target struct {
	backend ephemeral.Backend
	// now reads the backend's clock; advance moves it forward. Both are nil on a real server,
	// whose clock cannot be moved.
	now     func() time.Time
	advance func(d time.Duration)
	close   func()
}

// newMemTarget returns a memstore on a fake clock.
func newMemTarget() target {
	clock := memstore.NewFakeClock(start)
	b := memstore.New(memstore.WithClock(clock))
	return target{backend: b, now: clock.Now, advance: clock.Advance, close: func() { b.Close() }}
}

// newMiniTarget returns a redisstore on a fresh miniredis whose clock (TIME and key TTLs)
// moves only when advanced. The pumps block for at most 10 ms, so that they notice a clock
// move soon.
func newMiniTarget(t testing.TB) target {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		t.Fatalf("miniredis: %v", err)
	}
	m.SetTime(start)
	m.ClockTTL(true)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	b := redisstore.New(client, redisstore.WithPollInterval(10*time.Millisecond))
	var mu sync.Mutex
	now := start
	return target{
		backend: b,
		now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		},
		advance: func(d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(d)
			m.SetTime(now)
		},
		close: func() {
			b.Close()
			client.Close()
			m.Close()
		},
	}
}

// realClient returns a client of the server named by EPHEMERAL_REDIS_ADDR, or skips.
func realClient(t testing.TB) redis.UniversalClient {
	addr := os.Getenv(envRedis)
	if addr == "" {
		t.Skipf("set %s to run against a real Redis server", envRedis)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// clusterClient returns a client of the cluster named by EPHEMERAL_REDIS_CLUSTER, or skips.
func clusterClient(t testing.TB) redis.UniversalClient {
	addrs := os.Getenv(envCluster)
	if addrs == "" {
		t.Skipf("set %s to run against a Redis Cluster", envCluster)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	t.Cleanup(func() { c.Close() })
	return c
}

// newRealTarget returns a redisstore on client with a key prefix of its own; close removes
// its keys.
func newRealTarget(client redis.UniversalClient) target {
	prefix := testPrefix()
	b := redisstore.New(client, redisstore.WithKeyPrefix(prefix), redisstore.WithPollInterval(200*time.Millisecond))
	return target{backend: b, close: func() {
		b.Close()
		_, _ = deleteKeys(context.Background(), client, prefix)
	}}
}

// testPrefix returns a fresh key prefix, so that runs never see each other's keys.
func testPrefix() string { return "ephemeral-reliability-" + backend.NewEpoch(time.Now()) }

// scanKeys returns the keys that start with prefix+":", from every master of a cluster.
func scanKeys(ctx context.Context, client redis.UniversalClient, prefix string) ([]string, error) {
	var mu sync.Mutex
	var keys []string
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	switch c := client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	default:
		err = fmt.Errorf("unsupported client %T", client)
	}
	return keys, err
}

// deleteKeys removes the keys that start with prefix+":" and returns how many there were.
func deleteKeys(ctx context.Context, client redis.UniversalClient, prefix string) (int, error) {
	keys, err := scanKeys(ctx, client, prefix)
	for _, k := range keys {
		err = errors.Join(err, client.Del(ctx, k).Err())
	}
	return len(keys), err
}
