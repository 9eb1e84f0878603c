// Package storetest is the conformance suite of ephemeral backends: every [backend.Backend]
// must pass [Run], as database/sql drivers pass their driver tests.
//
// The suite checks the whole contract of runtime/backend through typed [ephemeral.Store]
// values: versions, CreatedAt, expiry, conditions and their conflict errors, limits and their
// one-per-ID rule, validation, tenant isolation, snapshots and their cursors, readers, overflow
// and concurrency, and the backend's Close. Every case gets a fresh [Harness].
package storetest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/google/go-cmp/cmp"
)

// Harness is one fresh, empty backend under test and the way to move its time.
type Harness struct {
	// Backend is the backend under test. The factory that returns the harness registers its
	// cleanup with t.Cleanup.
	Backend ephemeral.Backend
	// Advance moves the backend's clock forward by d: after it returns, the backend sees the
	// new time and processes the expiries due by then (their events may still be on their way).
	// A fake clock is advanced; on a real server Advance sleeps.
	Advance func(t testing.TB, d time.Duration)
	// RealTime reports that Advance sleeps: the suite then uses fewer and shorter waits.
	RealTime bool
}

// Run runs the whole suite; newHarness is called for each test case and returns a fresh backend.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(newEnv(t, newHarness(t)))
		})
	}
}

// waitFor bounds every wait for an event: generous, because a real server is slow to expire
// and CI runs the suites with -race on a busy machine; a passing case never waits for it.
const waitFor = 30 * time.Second

// env is one case's view of its harness.
type env struct {
	*testing.T
	h   Harness
	id  string // a store ID of its own, in case backends share a server
	ctx context.Context
}

func newEnv(t *testing.T, h Harness) *env {
	return &env{T: t, h: h, id: "storetest-" + backend.NewEpoch(time.Now()), ctx: t.Context()}
}

// shortTTL is a TTL the case lets run out with advance.
func (e *env) shortTTL() time.Duration {
	if e.h.RealTime {
		return 400 * time.Millisecond
	}
	return 10 * time.Second
}

// longTTL is a TTL that does not run out during a case.
const longTTL = time.Hour

func (e *env) advance(d time.Duration) {
	e.Helper()
	e.h.Advance(e.T, d)
}

// store returns a store of items with the case's ID, the long TTL and the default tenant and
// limits, unless opts change them.
func (e *env) store(opts ...ephemeral.StoreOption) *ephemeral.Store[string, item] {
	e.Helper()
	return e.storeID(e.id, opts...)
}

// storeID is store with another ID.
func (e *env) storeID(id string, opts ...ephemeral.StoreOption) *ephemeral.Store[string, item] {
	e.Helper()
	s, err := ephemeral.New(e.h.Backend, config{ID: id, TTL: longTTL, Codec: itemCodec{}}, opts...)
	if err != nil {
		e.Fatalf("ephemeral.New: %v", err)
	}
	return s
}

func (e *env) upsert(s *ephemeral.Store[string, item], key string, v item, opts ...ephemeral.UpsertOption) ephemeral.Entry[string, item] {
	e.Helper()
	ent, err := s.Upsert(e.ctx, key, v, opts...)
	if err != nil {
		e.Fatalf("Upsert(%q): %v", key, err)
	}
	return ent
}

func (e *env) touch(s *ephemeral.Store[string, item], key string, opts ...ephemeral.TouchOption) ephemeral.TouchResult {
	e.Helper()
	res, err := s.Touch(e.ctx, key, opts...)
	if err != nil {
		e.Fatalf("Touch(%q): %v", key, err)
	}
	return res
}

func (e *env) remove(s *ephemeral.Store[string, item], key string, opts ...ephemeral.RemoveOption) bool {
	e.Helper()
	ok, err := s.Remove(e.ctx, key, opts...)
	if err != nil {
		e.Fatalf("Remove(%q): %v", key, err)
	}
	return ok
}

func (e *env) get(s *ephemeral.Store[string, item], key string, opts ...ephemeral.GetOption) (ephemeral.Entry[string, item], bool) {
	e.Helper()
	ent, ok, err := s.Get(e.ctx, key, opts...)
	if err != nil {
		e.Fatalf("Get(%q): %v", key, err)
	}
	return ent, ok
}

// mustGet fails the test unless key is live and equal to want.
func (e *env) mustGet(s *ephemeral.Store[string, item], key string, want ephemeral.Entry[string, item], opts ...ephemeral.GetOption) {
	e.Helper()
	got, ok := e.get(s, key, opts...)
	if !ok {
		e.Fatalf("Get(%q): not found, want %+v", key, want)
	}
	if d := cmp.Diff(want, got); d != "" {
		e.Fatalf("Get(%q) (-want +got):\n%s", key, d)
	}
}

// mustMiss fails the test if key is live.
func (e *env) mustMiss(s *ephemeral.Store[string, item], key string, opts ...ephemeral.GetOption) {
	e.Helper()
	if got, ok := e.get(s, key, opts...); ok {
		e.Fatalf("Get(%q) = %+v, want not found", key, got)
	}
}

func (e *env) snapshot(s *ephemeral.Store[string, item], opts ...ephemeral.SnapshotOption) ephemeral.Snapshot[string, item] {
	e.Helper()
	snap, err := s.Snapshot(e.ctx, opts...)
	if err != nil {
		e.Fatalf("Snapshot: %v", err)
	}
	return snap
}

// reader opens a reader that is closed when the case ends.
func (e *env) reader(s *ephemeral.Store[string, item], opts ...ephemeral.ReaderOption) *ephemeral.Reader[string, item] {
	e.Helper()
	r, err := s.Reader(e.ctx, opts...)
	if err != nil {
		e.Fatalf("Reader: %v", err)
	}
	e.Cleanup(func() { r.Close() })
	return r
}

// recv returns the reader's next event, waiting at most waitFor.
func (e *env) recv(r *ephemeral.Reader[string, item]) ephemeral.Event[string, item] {
	e.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitFor)
	defer cancel()
	ev, err := r.Recv(ctx)
	if err != nil {
		e.Fatalf("Recv: %v", err)
	}
	return ev
}

// recvKind receives the next event and checks its kind and key.
func (e *env) recvKind(r *ephemeral.Reader[string, item], kind ephemeral.EventKind, key string) ephemeral.Event[string, item] {
	e.Helper()
	ev := e.recv(r)
	if ev.Kind != kind || ev.Key != key {
		e.Fatalf("got %v event of %q (version %d), want %v of %q", ev.Kind, ev.Key, ev.Version, kind, key)
	}
	return ev
}

// noEventBefore checks that the next event of r is the one of a fresh upsert, so that nothing
// was emitted before it.
func (e *env) noEventBefore(s *ephemeral.Store[string, item], r *ephemeral.Reader[string, item]) {
	e.Helper()
	ent := e.upsert(s, "sentinel", item{Name: "sentinel"})
	ev := e.recvKind(r, ephemeral.EventUpsert, "sentinel")
	if ev.Version != ent.Version {
		e.Fatalf("sentinel event version %d, want %d", ev.Version, ent.Version)
	}
}

// writesNothing runs rejected, which makes calls that must all fail, and checks that they
// changed no entry of s's default tenant and emitted no event there.
func (e *env) writesNothing(s *ephemeral.Store[string, item], rejected func()) {
	e.Helper()
	before := e.snapshot(s)
	r := e.reader(s)
	rejected()
	after := e.snapshot(s)
	if d := cmp.Diff(before, after); d != "" {
		e.Fatalf("rejected calls changed the snapshot (-before +after):\n%s", d)
	}
	e.noEventBefore(s, r)
}

// wantErr fails the test unless err matches target.
// closeEnds calls closeFn, named what, while a Recv of r waits, and checks that the Recv
// returns ErrClosed.
func (e *env) closeEnds(r *ephemeral.Reader[string, item], what string, closeFn func() error) {
	e.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := r.Recv(context.Background())
		done <- err
	}()
	if err := closeFn(); err != nil {
		e.Fatalf("%s: %v", what, err)
	}
	select {
	case err := <-done:
		e.wantErr("Recv blocked during "+what, err, ephemeral.ErrClosed)
	case <-time.After(waitFor):
		e.Fatalf("%s did not unblock Recv", what)
	}
}

func (e *env) wantErr(what string, err, target error) {
	e.Helper()
	if !errors.Is(err, target) {
		e.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

func (e *env) cursor(s string) backend.Cursor {
	e.Helper()
	c, err := backend.ParseCursor(s)
	if err != nil {
		e.Fatalf("ParseCursor(%q): %v", s, err)
	}
	return c
}

// config is the configuration of the suite's stores.
type config = ephemeral.Config[string, item]

// item is the value type of the suite's stores.
type item struct {
	Name string
	N    int
}

// itemCodec encodes an item as {"n":N,"name":"..."}; the name is quoted as a Go string, which
// suffices for the suite's values.
type itemCodec struct{}

const itemOverhead = len(`{"n":0,"name":""}`) // encoded size of an item with N 0 minus its name

func (itemCodec) Encode(dst []byte, v *item) ([]byte, error) {
	dst = append(dst, `{"n":`...)
	dst = strconv.AppendInt(dst, int64(v.N), 10)
	dst = append(dst, `,"name":`...)
	dst = strconv.AppendQuote(dst, v.Name)
	return append(dst, '}'), nil
}

func (itemCodec) Decode(src []byte, v *item) error {
	s, ok1 := strings.CutPrefix(string(src), `{"n":`)
	num, rest, ok2 := strings.Cut(s, `,"name":`)
	quoted, ok3 := strings.CutSuffix(rest, "}")
	if !ok1 || !ok2 || !ok3 {
		return errors.New("storetest: malformed item")
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return err
	}
	name, err := strconv.Unquote(quoted)
	if err != nil {
		return err
	}
	*v = item{Name: name, N: n}
	return nil
}
