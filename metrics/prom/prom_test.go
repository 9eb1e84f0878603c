package prom_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/lock"
	"github.com/ephemeral-go/ephemeral/metrics/prom"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func open(t testing.TB, b backend.Backend, id string) backend.Store {
	t.Helper()
	st, err := b.Open(id, backend.Limits{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A memory backend's readers, expiries and overflows, counted through the adapter.
func TestMemstore(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	obs := prom.New()
	clock := memstore.NewFakeClock(start)
	b := memstore.New(memstore.WithClock(clock), memstore.WithObserver(obs))
	defer b.Close()
	st := open(t, b, "rooms")
	sub, err := st.Subscribe(ctx, "lobby", backend.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := st.Upsert(ctx, "lobby", backend.UpsertRequest{Key: "a", Value: []byte("1"), TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Upsert(ctx, "lobby", backend.UpsertRequest{Key: "b", Value: []byte("1"), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Remove(ctx, "lobby", backend.RemoveRequest{Key: "b", Reason: "left"}); err != nil {
		t.Fatal(err)
	}
	// The reader reads 1.25 s later: the three events 1.25 s after they happened, the expiry
	// of a (at 1 s) 0.25 s after.
	clock.Advance(1250 * time.Millisecond)
	for _, want := range []backend.EventKind{backend.EventUpsert, backend.EventUpsert, backend.EventDelete, backend.EventExpire} {
		if ev, err := sub.Next(ctx); err != nil || ev.Kind != want {
			t.Fatalf("Next = %v, %v; want %v", ev.Kind, err, want)
		}
	}
	old := backend.Cursor{Epoch: backend.NewEpoch(time.Now()), Seq: 1}
	sub2, err := st.Subscribe(ctx, "lobby", backend.SubscribeRequest{After: &old})
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	if ev, err := sub2.Next(ctx); err != nil || ev.Kind != backend.EventOverflow {
		t.Fatalf("Next = %v, %v; want an overflow", ev.Kind, err)
	}

	const want = `
# HELP ephemeral_events_delivered_total Events that readers got from the backend, by store ID and kind; overflow events are in ephemeral_overflows_total.
# TYPE ephemeral_events_delivered_total counter
ephemeral_events_delivered_total{kind="delete",store="rooms"} 1
ephemeral_events_delivered_total{kind="expire",store="rooms"} 1
ephemeral_events_delivered_total{kind="touch",store="rooms"} 0
ephemeral_events_delivered_total{kind="upsert",store="rooms"} 2
# HELP ephemeral_overflows_total Overflow events that readers got: a reader fell behind the retained events, or the tenant's state was lost, and starts over from a snapshot.
# TYPE ephemeral_overflows_total counter
ephemeral_overflows_total{store="rooms"} 1
# HELP ephemeral_entries_expired_total Entries that the backend's expiry removed, each with an expire event.
# TYPE ephemeral_entries_expired_total counter
ephemeral_entries_expired_total{store="rooms"} 1
# HELP ephemeral_delivery_lag_seconds How long after its change a reader got an event, by the backend's clock (the Redis server's time against this process's for Redis).
# TYPE ephemeral_delivery_lag_seconds histogram
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="0.001"} 0
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="0.0025"} 0
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="0.005"} 0
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="0.01"} 0
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="0.025"} 0
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="0.05"} 0
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="0.1"} 0
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="0.25"} 1
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="0.5"} 1
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="1"} 1
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="2.5"} 4
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="5"} 4
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="10"} 4
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="30"} 4
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="60"} 4
ephemeral_delivery_lag_seconds_bucket{store="rooms",le="+Inf"} 4
ephemeral_delivery_lag_seconds_sum{store="rooms"} 4
ephemeral_delivery_lag_seconds_count{store="rooms"} 4
# HELP ephemeral_readers Readers open on the backend (mirrors and lock waiters among them), by store ID; one that only grows is a leak: readers never closed.
# TYPE ephemeral_readers gauge
ephemeral_readers{store="rooms"} 2
`
	err = testutil.CollectAndCompare(obs, strings.NewReader(want),
		"ephemeral_events_delivered_total", "ephemeral_overflows_total", "ephemeral_entries_expired_total", "ephemeral_delivery_lag_seconds", "ephemeral_readers")
	if err != nil {
		t.Error(err)
	}
	sub2.Close()
	sub2.Close() // a second Close counts once
	const closed = `
# HELP ephemeral_readers Readers open on the backend (mirrors and lock waiters among them), by store ID; one that only grows is a leak: readers never closed.
# TYPE ephemeral_readers gauge
ephemeral_readers{store="rooms"} 1
`
	if err := testutil.CollectAndCompare(obs, strings.NewReader(closed), "ephemeral_readers"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(obs); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// The writes a memory backend refuses, counted by reason.
func TestRefused(t *testing.T) {
	ctx := t.Context()
	obs := prom.New()
	b := memstore.New(memstore.WithClock(memstore.NewFakeClock(start)), memstore.WithObserver(obs))
	defer b.Close()
	st, err := b.Open("rooms", backend.Limits{MaxEntries: 1}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a", "b", "c"} { // b and c: the tenant is full
		st.Upsert(ctx, "lobby", backend.UpsertRequest{Key: key, Value: []byte("1"), TTL: time.Second})
	}
	if _, err := st.Upsert(ctx, "lobby", backend.UpsertRequest{Key: "a", Value: []byte("2"), TTL: time.Second,
		Cond: backend.Condition{Kind: backend.CondIfNew}}); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("IfNew upsert of a live key: %v", err)
	}
	obs.Refused("rooms", "lobby", errors.New("a backend of another module's")) // neither
	const want = `
# HELP ephemeral_writes_refused_total Writes that the tenant's state refused, by store ID and reason: capacity (an upsert of a new key in a tenant at its MaxEntries) or conflict (a write's condition did not hold, a contended lock's acquire among them).
# TYPE ephemeral_writes_refused_total counter
ephemeral_writes_refused_total{reason="capacity",store="rooms"} 2
ephemeral_writes_refused_total{reason="conflict",store="rooms"} 1
ephemeral_writes_refused_total{reason="other",store="rooms"} 1
`
	if err := testutil.CollectAndCompare(obs, strings.NewReader(want), "ephemeral_writes_refused_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(obs); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// The calls that only runtime/redisstore makes (its wiring is tested there), made directly.
func TestRedisCalls(t *testing.T) {
	obs := prom.New()
	obs.WriteBatch("s", "t1", 1)
	obs.WriteBatch("s", "t2", 3)
	obs.WriteBatch("s", "t1", 64)
	obs.CatchUp("s", "t1")
	obs.CatchUp("s", "t2")
	obs.Error("s", "t1", "tick", errors.New("ERR user_script:1: boom"))
	obs.Error("s", "t1", "write", errors.New("ERR user_script:1: boom"))
	obs.Error("s", "t2", "write", errors.New("i/o timeout"))
	obs.Delivered("s", "t1", backend.EventTouch, -time.Second) // skewed clocks: counts as no lag
	obs.StateLost("s", "t1")
	obs.StateLost("s", "t2")
	const want = `
# HELP ephemeral_states_lost_total Tenants whose state a write found made anew (a new epoch) sooner after this process's last write than it could have expired: the backend lost it (Redis: a restart without persistence, a FLUSHALL, a failover, an eviction). Counted once per process that had written the tenant within its event retention.
# TYPE ephemeral_states_lost_total counter
ephemeral_states_lost_total{store="s"} 2
# HELP ephemeral_write_batch_size Writes of a tenant applied in one call to the backend's storage (Redis: group commit; 1 when no other write was in flight).
# TYPE ephemeral_write_batch_size histogram
ephemeral_write_batch_size_bucket{store="s",le="1"} 1
ephemeral_write_batch_size_bucket{store="s",le="2"} 1
ephemeral_write_batch_size_bucket{store="s",le="4"} 2
ephemeral_write_batch_size_bucket{store="s",le="8"} 2
ephemeral_write_batch_size_bucket{store="s",le="16"} 2
ephemeral_write_batch_size_bucket{store="s",le="32"} 2
ephemeral_write_batch_size_bucket{store="s",le="64"} 3
ephemeral_write_batch_size_bucket{store="s",le="+Inf"} 3
ephemeral_write_batch_size_sum{store="s"} 68
ephemeral_write_batch_size_count{store="s"} 3
# HELP ephemeral_catchup_reads_total Reads from the backend's storage by readers that fell behind the feed they share with the tenant's other readers.
# TYPE ephemeral_catchup_reads_total counter
ephemeral_catchup_reads_total{store="s"} 2
# HELP ephemeral_backend_errors_total Failed calls to the backend's storage, by script or command (Redis: write, get, read, open, tick, snapshot; and with an empty store label poll, pubsub and config, which serve every store); calls whose context ended are not counted.
# TYPE ephemeral_backend_errors_total counter
ephemeral_backend_errors_total{call="tick",store="s"} 1
ephemeral_backend_errors_total{call="write",store="s"} 2
# HELP ephemeral_delivery_lag_seconds How long after its change a reader got an event, by the backend's clock (the Redis server's time against this process's for Redis).
# TYPE ephemeral_delivery_lag_seconds histogram
ephemeral_delivery_lag_seconds_bucket{store="s",le="0.001"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="0.0025"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="0.005"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="0.01"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="0.025"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="0.05"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="0.1"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="0.25"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="0.5"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="1"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="2.5"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="5"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="10"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="30"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="60"} 1
ephemeral_delivery_lag_seconds_bucket{store="s",le="+Inf"} 1
ephemeral_delivery_lag_seconds_sum{store="s"} 0
ephemeral_delivery_lag_seconds_count{store="s"} 1
`
	err := testutil.CollectAndCompare(obs, strings.NewReader(want), "ephemeral_write_batch_size",
		"ephemeral_catchup_reads_total", "ephemeral_backend_errors_total", "ephemeral_delivery_lag_seconds", "ephemeral_states_lost_total")
	if err != nil {
		t.Error(err)
	}
}

// Init makes the metrics of a store exist at zero.
func TestInit(t *testing.T) {
	obs := prom.New()
	obs.Init("a", "b")
	const want = `
# HELP ephemeral_overflows_total Overflow events that readers got: a reader fell behind the retained events, or the tenant's state was lost, and starts over from a snapshot.
# TYPE ephemeral_overflows_total counter
ephemeral_overflows_total{store="a"} 0
ephemeral_overflows_total{store="b"} 0
`
	if err := testutil.CollectAndCompare(obs, strings.NewReader(want), "ephemeral_overflows_total"); err != nil {
		t.Error(err)
	}
	// Four kinds of events, two reasons of refusals, and one series each of overflows, lag,
	// catch-ups, batches, expiries, readers and lost states, per store; no errors yet.
	if n := testutil.CollectAndCount(obs); n != 2*(4+2+7) {
		t.Errorf("%d series, want %d", n, 2*(4+2+7))
	}
}

// A store ID that is not UTF-8 (a backend used directly takes any) is a label with U+FFFD in
// place of its bad bytes; Prometheus panics on such a label value.
func TestInvalidUTF8(t *testing.T) {
	obs := prom.New()
	obs.Expired("s\xff", "t", 2)
	obs.Error("s\xff", "t", "write", errors.New("boom"))
	obs.Delivered("s\xff", "t", backend.EventKind(99), 0)
	const want = `
# HELP ephemeral_entries_expired_total Entries that the backend's expiry removed, each with an expire event.
# TYPE ephemeral_entries_expired_total counter
ephemeral_entries_expired_total{store="s�"} 2
`
	if err := testutil.CollectAndCompare(obs, strings.NewReader(want), "ephemeral_entries_expired_total"); err != nil {
		t.Error(err)
	}
}

var _ lock.Observer = (*prom.Observer)(nil)

// A lock lease lost by its local deadline, through lock.WithObserver: its backend closes
// under it, so that no extend succeeds; and the other reasons, counted directly.
func TestLeaseLost(t *testing.T) {
	obs := prom.New()
	b := memstore.New(memstore.WithClock(memstore.NewFakeClock(start)))
	defer b.Close()
	l, err := lock.New(b, lock.WithTTL(50*time.Millisecond), lock.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	err = l.WithLock(t.Context(), "job", func(ctx context.Context, _ *lock.Lease) error {
		b.Close()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("fn's ctx still live 10 s after the lease's local deadline")
		}
	})
	if !errors.Is(err, lock.ErrLeaseLost) {
		t.Fatalf("WithLock: %v, want ErrLeaseLost", err)
	}
	obs.LeaseLost("lock", "job", lock.LossGone)
	obs.LeaseLost("lock", "job", lock.LossGone)
	obs.LeaseLost("lock", "y", "a reason of another module")
	const want = `
# HELP ephemeral_lock_leases_lost_total Leases of package lock lost while held, by the Locker's store ID and reason: deadline (no extend succeeded before the lease's local deadline: the backend slow or unreachable, or the process stalled) or gone (the backend no longer held the lease: it expired, or the lock's state was lost).
# TYPE ephemeral_lock_leases_lost_total counter
ephemeral_lock_leases_lost_total{reason="deadline",store="lock"} 1
ephemeral_lock_leases_lost_total{reason="gone",store="lock"} 2
ephemeral_lock_leases_lost_total{reason="other",store="lock"} 1
`
	if err := testutil.CollectAndCompare(obs, strings.NewReader(want), "ephemeral_lock_leases_lost_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(obs); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// Once a store ID has been seen, the calls of the hot paths allocate nothing.
func TestAllocs(t *testing.T) {
	refusal := &backend.ConflictError{Key: "k"}
	obs := prom.New()
	obs.Delivered("s", "t", backend.EventUpsert, time.Millisecond)
	allocs := testing.AllocsPerRun(100, func() {
		obs.Delivered("s", "t", backend.EventUpsert, time.Millisecond)
		obs.Delivered("s", "t", backend.EventOverflow, 0)
		obs.CatchUp("s", "t")
		obs.WriteBatch("s", "t", 3)
		obs.Expired("s", "t", 1)
		obs.Refused("s", "t", refusal)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round of calls, want 0", allocs)
	}
}

// The backends and the typed API do not depend on Prometheus: only this package does.
func TestCoreDoesNotImportPrometheus(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goBin, "list", "-deps",
		"github.com/ephemeral-go/ephemeral", "github.com/ephemeral-go/ephemeral/runtime/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "github.com/ephemeral-go/ephemeral/runtime/backend\n") {
		t.Fatalf("go list -deps lists no runtime/backend:\n%s", out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "prometheus") {
			t.Errorf("the core depends on %s", strings.TrimSpace(line))
		}
	}
}
