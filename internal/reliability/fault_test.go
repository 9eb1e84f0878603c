package reliability

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	gocmp "github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

// faultFixture is a store on a redis-server of the test's own.
type faultFixture struct {
	srv    *redistest.Server
	client *redis.Client
	store  *ephemeral.Store[string, string]
}

func newFaultFixture(t *testing.T, l ephemeral.Limits) *faultFixture {
	srv := redistest.StartServer(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b := redisstore.New(client, redisstore.WithPollInterval(200*time.Millisecond))
	t.Cleanup(func() {
		b.Close()
		client.Close()
	})
	return &faultFixture{srv: srv, client: client, store: newStore(t, b, "faults", l)}
}

// reader starts a reader (after cursor, unless it is empty) and receives its events.
func (f *faultFixture) reader(t *testing.T, after string) *stream {
	opts := []ephemeral.ReaderOption{}
	if after != "" {
		opts = append(opts, ephemeral.After(after))
	}
	r, err := f.store.Reader(t.Context(), opts...)
	if err != nil {
		t.Fatalf("reader after %q: %v", after, err)
	}
	start, err := backend.ParseCursor(r.Cursor())
	if err != nil {
		t.Fatal(err)
	}
	s := startStream(r, start, "")
	t.Cleanup(s.close)
	return s
}

// mirror starts a mirror that retries fast.
func (f *faultFixture) mirror(t *testing.T) (*ephemeral.Mirror[string, string], chan struct{}) {
	changed := make(chan struct{}, 1)
	m, err := f.store.Mirror(func(ephemeral.Change[string, string]) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}, ephemeral.WithBackoff(10*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, changed
}

// snapshot takes a snapshot, retrying while the server is unreachable.
func (f *faultFixture) snapshot(t *testing.T) ephemeral.Snapshot[string, string] {
	var snap ephemeral.Snapshot[string, string]
	retry(t, "snapshot", func(ctx context.Context) (err error) {
		snap, err = f.store.Snapshot(ctx)
		return err
	})
	return snap
}

// retry calls fn until it succeeds, for at most waitFor.
func retry(t *testing.T, what string, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn(ctx)
		if err == nil {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: still failing after %v: %v", what, waitFor, err)
		}
	}
}

// waitMirror waits until the mirror holds exactly the entries of snap.
func waitMirror(t *testing.T, m *ephemeral.Mirror[string, string], changed chan struct{}, snap ephemeral.Snapshot[string, string]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	for {
		got := []ephemeral.Entry[string, string]{}
		for _, e := range m.All() {
			got = append(got, e)
		}
		d := gocmp.Diff(snap.Entries, got)
		if d == "" {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("mirror differs from the snapshot at %s (-snapshot +mirror):\n%s", snap.Cursor, d)
		}
	}
}

// written is what the writers know they wrote: the versions of successful upserts and
// touches, the reasons of successful removes.
type written struct {
	mu       sync.Mutex
	versions map[uint64]writtenOp
	reasons  map[string]string // reason -> key
	failed   int
}

type writtenOp struct {
	kind ephemeral.EventKind
	key  string
}

// TestFaultConnectionKills kills every client connection of the server (the readers' pub/sub
// one too) every 100 ms while writers, readers and mirrors work (EPHEMERAL_FAULT_DURATION
// long, 3 s by default). Readers
// must end with every event, versions contiguous, none twice, no overflow; every successful
// write must be among the events; mirrors must equal the final snapshot.
func TestFaultConnectionKills(t *testing.T) {
	duration := envDurationOr(t, envDuration, 3*time.Second)
	f := newFaultFixture(t, ephemeral.Limits{MaxEvents: 500_000})
	early := f.reader(t, "")
	m1, changed1 := f.mirror(t)

	admin := redis.NewClient(&redis.Options{Addr: f.srv.Addr()})
	defer admin.Close()
	ctx, cancel := context.WithTimeout(t.Context(), duration)
	defer cancel()
	var kills atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// TYPE normal spares the admin connection itself (SKIPME yes); TYPE pubsub is
			// the connection the readers' notices come on.
			for _, typ := range []string{"normal", "pubsub"} {
				if n, err := admin.ClientKillByFilter(context.Background(), "TYPE", typ).Result(); err == nil {
					kills.Add(n)
				}
			}
		}
	})
	w := &written{versions: map[uint64]writtenOp{}, reasons: map[string]string{}}
	for i := range 3 {
		wg.Go(func() { writeUntil(ctx, f.store, i, w) })
	}

	// Half way, a reader after the first reader's cursor and a second mirror join.
	select {
	case <-time.After(duration / 2):
	case <-t.Context().Done():
	}
	late := f.reader(t, early.r.Cursor())
	m2, changed2 := f.mirror(t)
	wg.Wait()

	snap := f.snapshot(t)
	final, err := backend.ParseCursor(snap.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	events := waitAll(t, early, final)
	waitAll(t, late, final)
	for _, ev := range events {
		if ev.Kind == ephemeral.EventDelete {
			delete(w.reasons, ev.Reason)
		}
		if op, ok := w.versions[ev.Version]; ok {
			if op != (writtenOp{ev.Kind, ev.Key}) {
				t.Fatalf("version %d: event %+v, but the write that returned it was a %v of %q", ev.Version, ev, op.kind, op.key)
			}
			delete(w.versions, ev.Version)
		}
	}
	if len(w.versions)+len(w.reasons) != 0 {
		t.Fatalf("successful writes without an event: versions %v, removes %v", w.versions, w.reasons)
	}
	waitMirror(t, m1, changed1, snap)
	waitMirror(t, m2, changed2, snap)
	t.Logf("%v of traffic: %d connections killed, %d events in order at every reader, %d writes failed (connection lost), mirrors equal the final snapshot of %d entries",
		duration, kills.Load(), len(events), w.failed, len(snap.Entries))
	if kills.Load() == 0 {
		t.Fatal("no connection was killed")
	}
}

// writeUntil makes writes, one every millisecond, until ctx is done, and records those that
// succeeded in w.
func writeUntil(ctx context.Context, s *ephemeral.Store[string, string], writer int, w *written) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		key := "k" + strconv.Itoa(rand.IntN(20))
		var err error
		var op writtenOp
		var version uint64
		reason := ""
		switch rand.IntN(3) {
		case 0:
			var e ephemeral.Entry[string, string]
			e, err = s.Upsert(ctx, key, "v"+strconv.Itoa(i))
			op, version = writtenOp{ephemeral.EventUpsert, key}, e.Version
		case 1:
			var r ephemeral.TouchResult
			r, err = s.Touch(ctx, key)
			if r.OK {
				op, version = writtenOp{ephemeral.EventTouch, key}, r.Version
			}
		case 2:
			var ok bool
			reason = fmt.Sprintf("w%d-%d", writer, i)
			ok, err = s.Remove(ctx, key, ephemeral.WithReason(reason))
			if !ok {
				reason = ""
			}
		}
		w.mu.Lock()
		switch {
		case err != nil:
			w.failed++
		case version != 0:
			w.versions[version] = op
		case reason != "":
			w.reasons[reason] = key
		}
		w.mu.Unlock()
	}
}

// waitAll waits until s has every event up to final and checks that they are exactly the
// versions after its start, in order, none twice, without an overflow.
func waitAll(t *testing.T, s *stream, final backend.Cursor) []ephemeral.Event[string, string] {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitFor)
	defer cancel()
	err := s.wait(ctx, func(evs []ephemeral.Event[string, string]) (bool, error) {
		for i, ev := range evs {
			want := s.start.Seq + uint64(i) + 1
			if ev.Kind == ephemeral.EventOverflow || ev.Version != want || ev.Cursor != (backend.Cursor{Epoch: final.Epoch, Seq: want}).String() {
				return false, fmt.Errorf("event %d: %+v, want version %d of epoch %s", i, ev, want, final.Epoch)
			}
		}
		return s.start.Seq+uint64(len(evs)) >= final.Seq, nil
	})
	if err != nil {
		t.Fatalf("reader after %v: %v", s.start, err)
	}
	evs, _ := s.received()
	return evs
}

// TestFaultRestart restarts the server without persistence: readers get an overflow into
// the new epoch and then every new event; mirrors relist.
func TestFaultRestart(t *testing.T) {
	testReset(t, func(f *faultFixture) { f.srv.Restart() })
}

// TestFaultFlushAll is TestFaultRestart with a FLUSHALL.
func TestFaultFlushAll(t *testing.T) {
	testReset(t, func(f *faultFixture) {
		if err := f.client.FlushAll(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
	})
}

func testReset(t *testing.T, reset func(*faultFixture)) {
	f := newFaultFixture(t, ephemeral.Limits{})
	r := f.reader(t, "")
	m, changed := f.mirror(t)
	for i := range 5 {
		upsertRetry(t, f.store, "old"+strconv.Itoa(i))
	}
	before := f.snapshot(t)
	old, _ := backend.ParseCursor(before.Cursor)
	waitAll(t, r, old)
	waitMirror(t, m, changed, before)

	reset(f)
	for i := range 3 {
		upsertRetry(t, f.store, "new"+strconv.Itoa(i))
	}
	r2 := f.reader(t, before.Cursor) // a reader after a cursor of the lost state
	after := f.snapshot(t)
	cur, _ := backend.ParseCursor(after.Cursor)
	if cur.Epoch == old.Epoch {
		t.Fatalf("epoch %s survived the reset", cur.Epoch)
	}
	if len(after.Entries) != 3 {
		t.Fatalf("after the reset: %+v, want the 3 new entries", after.Entries)
	}
	for _, s := range []*stream{r, r2} {
		waitOverflow(t, s, old, cur)
	}
	waitMirror(t, m, changed, after)
}

// upsertRetry upserts key, retrying while the server is unreachable.
func upsertRetry(t *testing.T, s *ephemeral.Store[string, string], key string) {
	retry(t, "upsert "+key, func(ctx context.Context) error {
		_, err := s.Upsert(ctx, key, "v")
		return err
	})
}

// waitOverflow checks that s, past the events up to old, gets an overflow from old into the
// new epoch and then every event of the new epoch up to final, in order.
func waitOverflow(t *testing.T, s *stream, old, final backend.Cursor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	err := s.wait(ctx, func(evs []ephemeral.Event[string, string]) (bool, error) {
		i := int(old.Seq - s.start.Seq) // the events of the old epoch come first
		if len(evs) <= i {
			return false, nil
		}
		ov := evs[i]
		fa, err := backend.ParseCursor(ov.Cursor)
		if ov.Kind != ephemeral.EventOverflow || ov.After != old.String() || err != nil || fa.Epoch != final.Epoch {
			return false, fmt.Errorf("event %d: %+v, want an overflow from %v into epoch %s", i, ov, old, final.Epoch)
		}
		for j, ev := range evs[i+1:] {
			if want := fa.Seq + uint64(j) + 1; ev.Version != want || ev.Cursor != (backend.Cursor{Epoch: final.Epoch, Seq: want}).String() {
				return false, fmt.Errorf("event %d after the overflow: %+v, want version %d", j, ev, want)
			}
		}
		return fa.Seq+uint64(len(evs)-i-1) >= final.Seq, nil
	})
	if err != nil {
		t.Fatalf("reader after %v: %v", s.start, err)
	}
}

// TestFaultUnreachable stops the server: every call fails within its context deadline with an
// error that wraps the cause; when the server is back, calls, readers and mirrors recover.
func TestFaultUnreachable(t *testing.T) {
	f := newFaultFixture(t, ephemeral.Limits{})
	r := f.reader(t, "")
	m, changed := f.mirror(t)
	upsertRetry(t, f.store, "before")
	before := f.snapshot(t)
	old, _ := backend.ParseCursor(before.Cursor)
	waitAll(t, r, old)
	waitMirror(t, m, changed, before)

	f.srv.Stop()
	const deadline = 300 * time.Millisecond
	calls := map[string]func(ctx context.Context) error{
		"upsert": func(ctx context.Context) error { _, err := f.store.Upsert(ctx, "k", "v"); return err },
		"touch":  func(ctx context.Context) error { _, err := f.store.Touch(ctx, "before"); return err },
		"touch many": func(ctx context.Context) error {
			_, err := f.store.TouchMany(ctx, []string{"before", "k"})
			return err
		},
		"remove": func(ctx context.Context) error { _, err := f.store.Remove(ctx, "before"); return err },
		"get":    func(ctx context.Context) error { _, _, err := f.store.Get(ctx, "before"); return err },
		"snapshot": func(ctx context.Context) error {
			_, err := f.store.Snapshot(ctx)
			return err
		},
		"reader": func(ctx context.Context) error {
			r, err := f.store.Reader(ctx)
			if err == nil {
				r.Close()
			}
			return err
		},
	}
	for _, name := range slices.Sorted(maps.Keys(calls)) {
		ctx, cancel := context.WithTimeout(t.Context(), deadline)
		t0 := time.Now()
		err := calls[name](ctx)
		took := time.Since(t0)
		cancel()
		var opErr *net.OpError
		switch {
		case err == nil:
			t.Errorf("%s with the server down: no error", name)
		case !errors.As(err, &opErr) && !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, context.DeadlineExceeded):
			t.Errorf("%s with the server down: %v (%T) wraps neither the network error nor the deadline", name, err, err)
		case took > deadline+500*time.Millisecond:
			t.Errorf("%s with the server down took %v, deadline %v", name, took, deadline)
		default:
			t.Logf("%s with the server down: %v after %v", name, err, took.Round(time.Millisecond))
		}
	}

	f.srv.Start() // empty: the data is lost, as on a restart without persistence
	upsertRetry(t, f.store, "after")
	after := f.snapshot(t)
	cur, _ := backend.ParseCursor(after.Cursor)
	waitOverflow(t, r, old, cur)
	waitMirror(t, m, changed, after)
}
