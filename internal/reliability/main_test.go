package reliability

import (
	"context"
	"fmt"
	"os"
	"strconv"
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
	// A go-redis client whose pool failed as many dials as it has connections (the fault tests
	// stop its server) starts a goroutine that dials again every second until it succeeds,
	// and notices that the client was closed only after its sleep: it ends within a second of
	// the test, by itself.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// The environment variables of the suite.
const (
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

// newRealTarget returns a redisstore on client with a key prefix of its own; close removes
// its keys.
func newRealTarget(client redis.UniversalClient) target {
	prefix := testPrefix()
	b := redisstore.New(client, redisstore.WithKeyPrefix(prefix), redisstore.WithPollInterval(200*time.Millisecond))
	return target{backend: b, close: func() {
		b.Close()
		_, _ = redistest.DeleteKeys(context.Background(), client, prefix)
	}}
}

// testPrefix returns a fresh key prefix, so that runs never see each other's keys.
func testPrefix() string { return redistest.Prefix("ephemeral-reliability") }
