package ephemeral_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

// errTransport is the error fakeBackend injects.
var errTransport = errors.New("fake transport error")

// fakeBackend is a small in-memory Backend for the mirror's tests: strictly increasing versions,
// an event log trimmed to the MaxEvents of the limits it was opened with, epochs that a reset
// replaces, a pause that holds subscriptions back, and injected transport failures. It keeps
// one state, whatever the store ID and tenant. Entries expire only when the test calls expire;
// the backend's time stays at t0, the time it was made, so that a mirror on the real clock
// sees the entries as live.
type fakeBackend struct {
	t0 time.Time // the time of every write, in whole milliseconds

	mu      sync.Mutex
	limits  backend.Limits // of the last Open
	epoch   string
	seq     uint64
	state   map[string]backend.Entry
	log     []backend.Event // the retained events, oldest first, contiguous versions
	changed chan struct{}   // closed and replaced whenever subscribers must look again
	paused  bool
	closed  bool
	lag     uint64 // a snapshot's cursor is this many versions behind its state
	rewind  uint64 // a subscription after a cursor starts this many versions before it

	// The next failSnapshot snapshots, failSubscribe subscribes and failNext reads fail, with
	// failWith or else errTransport.
	failSnapshot, failSubscribe, failNext int
	failWith                              error
	snapshots                             int // snapshots taken
}

var _ backend.Store = (*fakeBackend)(nil)

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		t0:      time.Now().Truncate(time.Millisecond),
		epoch:   "e1",
		state:   map[string]backend.Entry{},
		changed: make(chan struct{}),
	}
}

// Open returns the backend itself, whatever the ID.
func (b *fakeBackend) Open(_ string, l backend.Limits) (backend.Store, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limits = l
	return b, nil
}

// now is the backend's time in Unix milliseconds.
func (b *fakeBackend) now() int64 { return b.t0.UnixMilli() }

// failure returns the error of an injected failure; b.mu is held.
func (b *fakeBackend) failure() error {
	if b.failWith != nil {
		return b.failWith
	}
	return errTransport
}

// emit appends an event of the next version and wakes the subscribers; b.mu is held.
func (b *fakeBackend) emit(ev backend.Event) {
	ev.Epoch, ev.At = b.epoch, b.now()
	b.log = append(b.log, ev)
	if n := b.limits.MaxEvents; len(b.log) > n {
		b.log = slices.Clone(b.log[len(b.log)-n:])
	}
	b.wake()
}

func (b *fakeBackend) wake() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *fakeBackend) Upsert(_ context.Context, _ string, req backend.UpsertRequest) (backend.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	now := b.now()
	e := backend.Entry{Key: req.Key, Value: req.Value, Epoch: b.epoch, Version: b.seq, CreatedAt: now, UpdatedAt: now, ExpiresAt: now + req.TTL.Milliseconds()}
	if old, ok := b.state[req.Key]; ok {
		e.CreatedAt = old.CreatedAt
	}
	b.state[req.Key] = e
	b.emit(backend.Event{Kind: backend.EventUpsert, Key: req.Key, Version: b.seq, CreatedAt: e.CreatedAt, ExpiresAt: e.ExpiresAt, Value: e.Value})
	return e, nil
}

func (b *fakeBackend) Touch(_ context.Context, _ string, req backend.TouchRequest) (backend.TouchResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.state[req.Key]
	if !ok {
		return backend.TouchResult{}, nil
	}
	e.ExpiresAt = b.now() + req.TTL.Milliseconds()
	if !req.Quiet {
		b.seq++
		e.Version, e.UpdatedAt = b.seq, b.now()
		b.emit(backend.Event{Kind: backend.EventTouch, Key: req.Key, Version: b.seq, ExpiresAt: e.ExpiresAt})
	}
	b.state[req.Key] = e
	return backend.TouchResult{OK: true, Version: e.Version, ExpiresAt: e.ExpiresAt}, nil
}

func (b *fakeBackend) TouchMany(ctx context.Context, tenant string, req backend.TouchManyRequest) ([]backend.TouchResult, error) {
	res := make([]backend.TouchResult, len(req.Keys))
	for i, k := range req.Keys {
		res[i], _ = b.Touch(ctx, tenant, backend.TouchRequest{Key: k, TTL: req.TTL, Quiet: req.Quiet})
	}
	return res, nil
}

func (b *fakeBackend) Remove(_ context.Context, _ string, req backend.RemoveRequest) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.state[req.Key]; !ok {
		return false, nil
	}
	delete(b.state, req.Key)
	b.seq++
	b.emit(backend.Event{Kind: backend.EventDelete, Key: req.Key, Version: b.seq, Reason: req.Reason})
	return true, nil
}

// expire makes key expire now, as a backend does at its ExpiresAt.
func (b *fakeBackend) expire(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.state[key]
	delete(b.state, key)
	b.seq++
	b.emit(backend.Event{Kind: backend.EventExpire, Key: key, Version: b.seq, ExpiresAt: e.ExpiresAt})
}

func (b *fakeBackend) Get(_ context.Context, _, key string) (backend.Entry, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.state[key]
	return e, ok, nil
}

func (b *fakeBackend) Snapshot(_ context.Context, _, prefix string) (backend.Snapshot, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return backend.Snapshot{}, backend.ErrClosed
	}
	if b.failSnapshot > 0 {
		b.failSnapshot--
		return backend.Snapshot{}, b.failure()
	}
	b.snapshots++
	var snap backend.Snapshot
	for _, e := range b.state {
		if strings.HasPrefix(e.Key, prefix) {
			snap.Entries = append(snap.Entries, e)
		}
	}
	slices.SortFunc(snap.Entries, func(x, y backend.Entry) int { return strings.Compare(x.Key, y.Key) })
	snap.Cursor = backend.Cursor{Epoch: b.epoch, Seq: b.seq - b.lag}
	return snap, nil
}

func (b *fakeBackend) Subscribe(_ context.Context, _ string, req backend.SubscribeRequest) (backend.Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, backend.ErrClosed
	}
	if b.failSubscribe > 0 {
		b.failSubscribe--
		return nil, b.failure()
	}
	pos := backend.Cursor{Epoch: b.epoch, Seq: b.seq}
	if req.After != nil {
		pos = *req.After
		pos.Seq -= min(pos.Seq, b.rewind)
	}
	return &fakeSub{b: b, prefix: req.Prefix, start: pos, pos: pos, done: make(chan struct{})}, nil
}

// reset replaces the state with a new, empty epoch, as a flushed Redis does.
func (b *fakeBackend) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.epoch, b.seq, b.state, b.log = "e2", 0, map[string]backend.Entry{}, nil
	b.wake()
}

// pause holds subscriptions back until resume, so that a test can make several changes that a
// mirror sees at once.
func (b *fakeBackend) pause()  { b.set(func() { b.paused = true }) }
func (b *fakeBackend) resume() { b.set(func() { b.paused = false }) }

// Close closes the backend: its subscriptions and later calls fail with ErrClosed.
func (b *fakeBackend) Close() error {
	b.set(func() { b.closed = true })
	return nil
}

// set runs f under b.mu and wakes the subscribers.
func (b *fakeBackend) set(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f()
	b.wake()
}

type fakeSub struct {
	b      *fakeBackend
	prefix string
	start  backend.Cursor
	pos    backend.Cursor // guarded by b.mu
	once   sync.Once
	done   chan struct{}
}

func (s *fakeSub) Start() backend.Cursor { return s.start }

func (s *fakeSub) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *fakeSub) Next(ctx context.Context) (*backend.Event, error) {
	for {
		s.b.mu.Lock()
		ev, ok, err := s.next()
		changed := s.b.changed
		s.b.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if ok {
			return &ev, nil
		}
		select {
		case <-changed:
		case <-s.done:
			return nil, backend.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// next returns the subscription's next event, if there is one; s.b.mu is held.
func (s *fakeSub) next() (backend.Event, bool, error) {
	b := s.b
	select {
	case <-s.done:
		return backend.Event{}, false, backend.ErrClosed
	default:
	}
	switch {
	case b.closed:
		return backend.Event{}, false, backend.ErrClosed
	case b.failNext > 0:
		b.failNext--
		return backend.Event{}, false, b.failure()
	case b.paused:
		return backend.Event{}, false, nil
	}
	first := b.seq + 1 - uint64(len(b.log)) // the version of the oldest retained event
	if ev, lost := backend.Overflow(s.pos, b.epoch, first, b.seq, b.now()); lost {
		s.pos = ev.FirstAvailable
		return ev, true, nil
	}
	for _, ev := range b.log[s.pos.Seq+1-first:] {
		s.pos = ev.Cursor()
		if strings.HasPrefix(ev.Key, s.prefix) {
			return ev, true, nil
		}
	}
	return backend.Event{}, false, nil
}

// newTestStore returns a store of text values under plain string keys with a one-minute TTL
// on b.
func newTestStore(t *testing.T, b ephemeral.Backend, opts ...ephemeral.StoreOption) *ephemeral.Store[string, text] {
	t.Helper()
	s, err := ephemeral.New(b, textConfig("mirror", time.Minute), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startMirror starts a mirror of s that sends its changes on its channel, waits until it is
// ready and closes it when the test ends.
func startMirror(t *testing.T, s *ephemeral.Store[string, text], opts ...ephemeral.MirrorOption) *ephemeral.Mirror[string, text] {
	t.Helper()
	opts = append([]ephemeral.MirrorOption{ephemeral.WithChangeChan(100)}, opts...)
	m, err := s.Mirror(nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	return m
}

// describeChange formats a change for comparisons, such as "removed b=2 v5 delete(gone)".
func describeChange(c ephemeral.Change[string, text]) string {
	s := fmt.Sprintf("%s %s=%s v%d", c.Kind, c.Key, c.Entry.Value.S, c.Version)
	if c.Kind == ephemeral.ChangeRemoved {
		s += fmt.Sprintf(" %s(%s)", c.Cause, c.Reason)
	}
	return s
}

// expectChanges receives len(want) changes from ch, waiting at most 5 s, and compares them
// with want.
func expectChanges(t *testing.T, ch <-chan ephemeral.Change[string, text], want ...string) {
	t.Helper()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	var got []string
	for len(got) < len(want) {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatalf("change channel closed after %q, want %q", got, want)
			}
			if c.Entry.Key != c.Key {
				t.Errorf("change of %q has an entry of %q", c.Key, c.Entry.Key)
			}
			got = append(got, describeChange(c))
		case <-timeout.C:
			t.Fatalf("timed out after changes %q, want %q", got, want)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

// mirrorContents returns the mirror's entries as "key=value vN" strings, in the order of All.
func mirrorContents(m *ephemeral.Mirror[string, text]) []string {
	var out []string
	for k, e := range m.All() {
		out = append(out, fmt.Sprintf("%s=%s v%d", k, e.Value.S, e.Version))
	}
	return out
}

// snapshotContents returns what mirrorContents of a mirror equal to a fresh snapshot returns.
func snapshotContents(t *testing.T, s *ephemeral.Store[string, text], opts ...ephemeral.SnapshotOption) []string {
	t.Helper()
	snap, err := s.Snapshot(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range snap.Entries {
		out = append(out, fmt.Sprintf("%s=%s v%d", e.Key, e.Value.S, e.Version))
	}
	return out
}

func mustUpsert(t *testing.T, s *ephemeral.Store[string, text], key, value string, opts ...ephemeral.UpsertOption) ephemeral.Entry[string, text] {
	t.Helper()
	e, err := s.Upsert(context.Background(), key, text{value}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustRemove(t *testing.T, s *ephemeral.Store[string, text], key string, opts ...ephemeral.RemoveOption) {
	t.Helper()
	if ok, err := s.Remove(context.Background(), key, opts...); err != nil || !ok {
		t.Fatalf("Remove(%q) = %v, %v", key, ok, err)
	}
}

func TestMirrorInitialSync(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	mustUpsert(t, s, "b", "2")
	mustUpsert(t, s, "a", "1")
	mustUpsert(t, s, "c", "3")

	m := startMirror(t, s)
	expectChanges(t, m.Changes(), "added a=1 v2", "added b=2 v1", "added c=3 v3")
	if diff := cmp.Diff([]string{"a=1 v2", "b=2 v1", "c=3 v3"}, mirrorContents(m)); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
	if n := m.Len(); n != 3 {
		t.Errorf("Len = %d, want 3", n)
	}
	if e, ok := m.Get("b"); !ok || e.Key != "b" || e.Value.S != "2" || e.Version != 1 || !e.ExpiresAt.Equal(b.t0.Add(time.Minute)) {
		t.Errorf("Get(b) = %+v, %v", e, ok)
	}
	if _, ok := m.Get("d"); ok {
		t.Error("Get(d) found a key never written")
	}
	if err := m.Err(); err != nil {
		t.Errorf("Err of a running mirror = %v", err)
	}
}

func TestMirrorPrefix(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	mustUpsert(t, s, "room1/a", "1")
	mustUpsert(t, s, "room2/a", "2")

	m := startMirror(t, s, ephemeral.WithPrefix("room1/"))
	expectChanges(t, m.Changes(), "added room1/a=1 v1")
	mustUpsert(t, s, "room2/b", "3")
	mustUpsert(t, s, "room1/b", "4")
	expectChanges(t, m.Changes(), "added room1/b=4 v4")
	if diff := cmp.Diff([]string{"room1/a=1 v1", "room1/b=4 v4"}, mirrorContents(m)); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
}

func TestMirrorLiveChanges(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	mustUpsert(t, s, "a", "1")
	m := startMirror(t, s)
	expectChanges(t, m.Changes(), "added a=1 v1")

	mustUpsert(t, s, "b", "2")
	expectChanges(t, m.Changes(), "added b=2 v2")
	mustUpsert(t, s, "a", "1b")
	expectChanges(t, m.Changes(), "updated a=1b v3")

	res, err := s.Touch(context.Background(), "a", ephemeral.WithTTL(time.Hour))
	if err != nil || !res.OK {
		t.Fatalf("Touch = %+v, %v", res, err)
	}
	expectChanges(t, m.Changes(), "touched a=1b v4")
	if e, ok := m.Get("a"); !ok || e.Version != 4 || !e.ExpiresAt.Equal(b.t0.Add(time.Hour)) || e.Value.S != "1b" {
		t.Errorf("Get(a) after touch = %+v, %v", e, ok)
	}

	mustRemove(t, s, "b", ephemeral.WithReason("left"))
	expectChanges(t, m.Changes(), "removed b=2 v5 delete(left)")
	if _, ok := m.Get("b"); ok {
		t.Error("Get(b) after its delete found it")
	}

	b.expire("a")
	expectChanges(t, m.Changes(), "removed a=1b v6 expire()")
	if n := m.Len(); n != 0 {
		t.Errorf("Len = %d, want 0", n)
	}
}

// TestMirrorVersionGuard gives the mirror a snapshot whose cursor lies before its state, as a
// backend that takes the cursor first does: the events it replays are older than the entries
// the mirror holds and must change nothing.
func TestMirrorVersionGuard(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	mustUpsert(t, s, "a", "old") // v1
	mustUpsert(t, s, "b", "gone")
	mustUpsert(t, s, "a", "new")
	mustRemove(t, s, "b")
	if _, err := s.Touch(context.Background(), "a"); err != nil { // v5
		t.Fatal(err)
	}
	b.lag = 5 // the snapshot's cursor is at version 0: all five events are replayed

	m := startMirror(t, s)
	mustUpsert(t, s, "c", "3") // v6
	expectChanges(t, m.Changes(), "added a=new v5", "added c=3 v6")
	if diff := cmp.Diff([]string{"a=new v5", "c=3 v6"}, mirrorContents(m)); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
}

// TestMirrorIgnoresRedelivery makes the backend deliver events again after a reconnect, as an
// at-least-once stream does: the replayed events must change nothing.
func TestMirrorIgnoresRedelivery(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	m := startMirror(t, s, ephemeral.WithBackoff(time.Millisecond, time.Millisecond))
	mustUpsert(t, s, "a", "1")
	mustUpsert(t, s, "a", "2")
	mustUpsert(t, s, "b", "3")
	mustRemove(t, s, "b")
	expectChanges(t, m.Changes(), "added a=1 v1", "updated a=2 v2", "added b=3 v3", "removed b=3 v4 delete()")

	b.set(func() { b.failNext, b.rewind = 1, 4 })
	mustUpsert(t, s, "c", "5")
	expectChanges(t, m.Changes(), "added c=5 v5")
	if diff := cmp.Diff([]string{"a=2 v2", "c=5 v5"}, mirrorContents(m)); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
}

// gatedMirror starts a mirror of s whose change callback sends every change on changes and,
// after the change of key gate, blocks until release is closed. The mirror is closed when the
// test ends.
func gatedMirror(t *testing.T, s *ephemeral.Store[string, text], gate string, opts ...ephemeral.MirrorOption) (m *ephemeral.Mirror[string, text], changes <-chan ephemeral.Change[string, text], release chan struct{}) {
	t.Helper()
	ch := make(chan ephemeral.Change[string, text], 100)
	release = make(chan struct{})
	m, err := s.Mirror(func(c ephemeral.Change[string, text]) {
		ch <- c
		if c.Key == gate {
			<-release
		}
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-release:
		default: // the test failed before it released the callback
			close(release)
		}
		m.Close()
	})
	return m, ch, release
}

// TestMirrorOverflowRelists holds the mirror back in its change callback while the backend
// drops more events than it retains: the mirror must relist and end equal to a fresh snapshot,
// reporting the differences.
func TestMirrorOverflowRelists(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b, ephemeral.WithLimits(ephemeral.Limits{MaxEvents: 3}))
	mustUpsert(t, s, "x", "1")
	mustUpsert(t, s, "y", "2")

	m, changes, release := gatedMirror(t, s, "gate")
	expectChanges(t, changes, "added x=1 v1", "added y=2 v2")
	mustUpsert(t, s, "gate", "g") // v3
	expectChanges(t, changes, "added gate=g v3")

	// The mirror is blocked in the callback for gate; these six events overflow its reader.
	mustRemove(t, s, "x")
	mustUpsert(t, s, "y", "2b")
	mustUpsert(t, s, "z1", "z")
	mustUpsert(t, s, "z2", "z")
	mustRemove(t, s, "z1")
	mustUpsert(t, s, "z3", "z") // v9
	close(release)

	expectChanges(t, changes, "removed x=1 v9 relist()", "updated y=2b v5", "added z2=z v7", "added z3=z v9")
	if diff := cmp.Diff(snapshotContents(t, s), mirrorContents(m)); diff != "" {
		t.Errorf("mirror differs from a fresh snapshot (-want +got):\n%s", diff)
	}
	mustUpsert(t, s, "z4", "z")
	expectChanges(t, changes, "added z4=z v10")
}

// TestMirrorEpochChange resets the backend, as a flushed Redis: the mirror's reader sees a new
// epoch, and the mirror relists. An entry of the new epoch at the version and time of the old
// one's (the fake's clock stands still) is an update too.
func TestMirrorEpochChange(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	mustUpsert(t, s, "a", "1")
	mustUpsert(t, s, "b", "2")
	m := startMirror(t, s)
	expectChanges(t, m.Changes(), "added a=1 v1", "added b=2 v2")

	b.pause()
	b.reset()
	mustUpsert(t, s, "a", "1b") // v1 of the new epoch, as a was, at the same ms
	mustUpsert(t, s, "c", "3")  // v2
	b.resume()

	expectChanges(t, m.Changes(), "updated a=1b v1", "removed b=2 v2 relist()", "added c=3 v2")
	if diff := cmp.Diff(snapshotContents(t, s), mirrorContents(m)); diff != "" {
		t.Errorf("mirror differs from a fresh snapshot (-want +got):\n%s", diff)
	}
	mustUpsert(t, s, "d", "4")
	expectChanges(t, m.Changes(), "added d=4 v3")
}

func TestMirrorRetriesTransportErrors(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	mustUpsert(t, s, "a", "1")
	b.failSnapshot, b.failSubscribe = 2, 1

	errs := make(chan error, 100)
	m := startMirror(t, s,
		ephemeral.WithBackoff(time.Millisecond, 4*time.Millisecond),
		ephemeral.OnMirrorError(func(err error) { errs <- err }))
	expectChanges(t, m.Changes(), "added a=1 v1")

	b.set(func() { b.failNext = 2 })
	mustUpsert(t, s, "b", "2")
	expectChanges(t, m.Changes(), "added b=2 v2")
	close(errs)
	n := 0
	for err := range errs {
		if !errors.Is(err, errTransport) {
			t.Errorf("reported error %v, want a transport error", err)
		}
		n++
	}
	if n != 5 {
		t.Errorf("%d errors reported, want 5 (2 snapshots, 1 subscribe, 2 reads)", n)
	}
	if err := m.Err(); err != nil {
		t.Errorf("Err = %v, want nil: transport errors are retried", err)
	}
}

// TestMirrorRelistsOnUnknownCursor makes the backend refuse the mirror's cursor, as one that
// lost the last writes of its epoch in a failover does: the mirror must take a new snapshot.
func TestMirrorRelistsOnUnknownCursor(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	mustUpsert(t, s, "a", "1")
	m := startMirror(t, s, ephemeral.WithBackoff(time.Millisecond, time.Millisecond))
	expectChanges(t, m.Changes(), "added a=1 v1")

	b.set(func() { b.failNext, b.failSubscribe, b.failWith = 1, 1, ephemeral.ErrInvalidCursor })
	mustUpsert(t, s, "b", "2")
	expectChanges(t, m.Changes(), "added b=2 v2")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.snapshots != 2 {
		t.Errorf("%d snapshots taken, want 2: the first and one after the unknown cursor", b.snapshots)
	}
}

func TestMirrorSkipsUndecodableValues(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	ctx := context.Background()
	// Another program writes values the store's codec cannot decode.
	if _, err := b.Upsert(ctx, ephemeral.DefaultTenant, backend.UpsertRequest{Key: "a", Value: []byte("bad"), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, s, "b", "2")

	errs := make(chan error, 100)
	m := startMirror(t, s, ephemeral.OnMirrorError(func(err error) { errs <- err }))
	expectChanges(t, m.Changes(), "added b=2 v2")
	if _, err := b.Upsert(ctx, ephemeral.DefaultTenant, backend.UpsertRequest{Key: "b", Value: []byte("bad"), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, s, "c", "3")
	expectChanges(t, m.Changes(), "added c=3 v4")

	for range 2 {
		if err := <-errs; !errors.Is(err, ephemeral.ErrDecode) {
			t.Errorf("reported error %v, want ErrDecode", err)
		}
	}
	if diff := cmp.Diff([]string{"b=2 v2", "c=3 v4"}, mirrorContents(m)); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
}

// TestMirrorHidesExpired checks that an entry past its ExpiresAt by the mirror's clock is
// hidden before the backend's expire event removes it.
func TestMirrorHidesExpired(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	mustUpsert(t, s, "a", "1", ephemeral.WithTTL(time.Second))
	mustUpsert(t, s, "b", "2", ephemeral.WithTTL(time.Hour))
	var now atomic.Pointer[time.Time]
	now.Store(&b.t0)
	m := startMirror(t, s, ephemeral.WithMirrorClock(func() time.Time { return *now.Load() }))
	expectChanges(t, m.Changes(), "added a=1 v1", "added b=2 v2")

	early := b.t0.Add(time.Second - time.Millisecond)
	now.Store(&early)
	if _, ok := m.Get("a"); !ok || m.Len() != 2 {
		t.Errorf("Get(a) a millisecond before its ExpiresAt: %v; Len = %d", ok, m.Len())
	}
	late := b.t0.Add(time.Second)
	now.Store(&late)
	if e, ok := m.Get("a"); ok {
		t.Errorf("Get(a) at its ExpiresAt = %+v", e)
	}
	if diff := cmp.Diff([]string{"b=2 v2"}, mirrorContents(m)); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
	if n := m.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}
	b.expire("a")
	expectChanges(t, m.Changes(), "removed a=1 v3 expire()")
}

func TestMirrorClose(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	mustUpsert(t, s, "a", "1")
	m := startMirror(t, s)
	m.Close()
	m.Close()
	if err := m.Err(); !errors.Is(err, ephemeral.ErrClosed) {
		t.Errorf("Err after Close = %v, want ErrClosed", err)
	}
	for range m.Changes() { // the channel is closed: the loop ends
	}
	if diff := cmp.Diff([]string{"a=1 v1"}, mirrorContents(m)); diff != "" {
		t.Errorf("All after Close (-want +got):\n%s", diff)
	}
	if err := m.Ready(context.Background()); err != nil {
		t.Errorf("Ready after the first sync and Close = %v", err)
	}
}

func TestMirrorCloseBeforeReady(t *testing.T) {
	b := newFakeBackend()
	b.failSnapshot = 1 << 30
	s := newTestStore(t, b)
	m, err := s.Mirror(nil, ephemeral.WithBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if err := m.Ready(context.Background()); !errors.Is(err, ephemeral.ErrClosed) {
		t.Errorf("Ready of a mirror closed before its first sync = %v, want ErrClosed", err)
	}
}

// TestMirrorReadyGivesLastError: a mirror that cannot take its first snapshot retries, and a
// Ready whose ctx ends says why, as well as that the ctx ended.
func TestMirrorReadyGivesLastError(t *testing.T) {
	b := newFakeBackend()
	b.failSnapshot = 1 << 30
	s := newTestStore(t, b)
	errs := make(chan error, 1)
	m, err := s.Mirror(nil, ephemeral.WithBackoff(time.Hour, time.Hour), ephemeral.OnMirrorError(func(err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.Ready(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ready with a ctx done = %v, want context.Canceled", err)
	}
	select {
	case <-errs:
	case <-time.After(10 * time.Second):
		t.Fatal("no error reported in 10s")
	}
	err = m.Ready(ctx)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errTransport) {
		t.Fatalf("Ready with a ctx done, after a failed snapshot = %v, want context.Canceled and the transport error", err)
	}
}

func TestMirrorStopsWhenBackendCloses(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	m := startMirror(t, s)
	b.Close()
	select {
	case <-m.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the mirror did not stop after its backend closed")
	}
	if err := m.Err(); !errors.Is(err, ephemeral.ErrClosed) {
		t.Errorf("Err = %v, want ErrClosed", err)
	}
}

func TestMirrorInvalidOptions(t *testing.T) {
	b := newFakeBackend()
	s := newTestStore(t, b)
	for name, tc := range map[string]struct {
		opt  ephemeral.MirrorOption
		want error
	}{
		"empty tenant": {ephemeral.WithTenant(""), ephemeral.ErrInvalidTenant}, // never the default tenant
		"long tenant":  {ephemeral.WithTenant(strings.Repeat("t", ephemeral.MaxTenantBytes+1)), ephemeral.ErrInvalidTenant},
		"buffer":       {ephemeral.WithChangeChan(-1), ephemeral.ErrInvalidConfig},
		"backoff":      {ephemeral.WithBackoff(time.Second, time.Millisecond), ephemeral.ErrInvalidConfig},
		"zero backoff": {ephemeral.WithBackoff(0, time.Millisecond), ephemeral.ErrInvalidConfig},
	} {
		m, err := s.Mirror(func(ephemeral.Change[string, text]) {}, tc.opt)
		if m != nil {
			m.Close()
			t.Errorf("%s: Mirror returned a mirror", name)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.snapshots != 0 {
		t.Errorf("%d snapshots taken by mirrors that failed to start", b.snapshots)
	}
}

// TestMirrorTenant checks that a mirror follows one tenant, the default one or that of
// WithTenant.
func TestMirrorTenant(t *testing.T) {
	s, _ := newMemStore(t, ephemeral.WithDefaultTenant("home"))
	mustUpsert(t, s, "a", "home")
	mustUpsert(t, s, "a", "away", ephemeral.WithTenant("away"))
	home := startMirror(t, s)
	away := startMirror(t, s, ephemeral.WithTenant("away"))
	expectChanges(t, home.Changes(), "added a=home v1")
	expectChanges(t, away.Changes(), "added a=away v1")
	mustUpsert(t, s, "b", "away", ephemeral.WithTenant("away"))
	mustUpsert(t, s, "b", "home")
	expectChanges(t, home.Changes(), "added b=home v2")
	expectChanges(t, away.Changes(), "added b=away v2")
}

func TestChangeKindString(t *testing.T) {
	for k, want := range map[ephemeral.ChangeKind]string{
		ephemeral.ChangeAdded:   "added",
		ephemeral.ChangeUpdated: "updated",
		ephemeral.ChangeTouched: "touched",
		ephemeral.ChangeRemoved: "removed",
		0:                       "ChangeKind(0)",
		9:                       "ChangeKind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("ChangeKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

// TestRemoveCauseString checks the names of the causes, and that the zero cause of a change
// that is not a removal prints as nothing.
func TestRemoveCauseString(t *testing.T) {
	for c, want := range map[ephemeral.RemoveCause]string{
		ephemeral.CauseDelete: "delete",
		ephemeral.CauseExpire: "expire",
		ephemeral.CauseRelist: "relist",
		0:                     "",
		9:                     "RemoveCause(9)",
	} {
		if got := c.String(); got != want {
			t.Errorf("RemoveCause(%d).String() = %q, want %q", c, got, want)
		}
	}
	if got := fmt.Sprint(ephemeral.Change[string, text]{Kind: ephemeral.ChangeAdded}.Cause); got != "" {
		t.Errorf("the cause of an added change prints as %q", got)
	}
}

// newMemBackend returns a memstore whose clock moves only when the test advances it, closed
// when the test ends.
func newMemBackend(t *testing.T) (*memstore.Backend, *memstore.FakeClock) {
	t.Helper()
	clock := memstore.NewFakeClock(time.Now().Truncate(time.Millisecond))
	b := memstore.New(memstore.WithClock(clock))
	t.Cleanup(func() { b.Close() })
	return b, clock
}

// newMemStore returns a store of text values on a memstore whose clock moves only when the
// test advances it.
func newMemStore(t *testing.T, opts ...ephemeral.StoreOption) (*ephemeral.Store[string, text], *memstore.FakeClock) {
	t.Helper()
	b, clock := newMemBackend(t)
	return newTestStore(t, b, opts...), clock
}

func TestMirrorMemstore(t *testing.T) {
	s, clock := newMemStore(t)
	mustUpsert(t, s, "a", "1", ephemeral.WithTTL(time.Second))
	mustUpsert(t, s, "b", "2")
	m := startMirror(t, s, ephemeral.WithMirrorClock(clock.Now))
	expectChanges(t, m.Changes(), "added a=1 v1", "added b=2 v2")

	mustUpsert(t, s, "c", "3")
	mustUpsert(t, s, "b", "2b")
	if _, err := s.Touch(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	mustRemove(t, s, "c", ephemeral.WithReason("left"))
	expectChanges(t, m.Changes(), "added c=3 v3", "updated b=2b v4", "touched c=3 v5", "removed c=3 v6 delete(left)")

	clock.Advance(time.Second) // a expires; the backend's event must reach the mirror
	expectChanges(t, m.Changes(), "removed a=1 v7 expire()")
	if diff := cmp.Diff(snapshotContents(t, s), mirrorContents(m)); diff != "" {
		t.Errorf("mirror differs from a fresh snapshot (-want +got):\n%s", diff)
	}
}

func TestMirrorMemstoreOverflow(t *testing.T) {
	s, _ := newMemStore(t, ephemeral.WithLimits(ephemeral.Limits{MaxEvents: 3}))
	mustUpsert(t, s, "x", "1")
	mustUpsert(t, s, "y", "2")
	m, changes, release := gatedMirror(t, s, "k/gate", ephemeral.WithPrefix("k/"))
	mustUpsert(t, s, "k/gate", "g")
	expectChanges(t, changes, "added k/gate=g v3")

	for i := range 10 { // while the mirror is blocked, its reader falls behind
		mustUpsert(t, s, fmt.Sprintf("k/%d", i%4), strconv.Itoa(i))
	}
	mustRemove(t, s, "k/gate")
	close(release)
	expectChanges(t, changes, "added k/0=8 v12", "added k/1=9 v13", "added k/2=6 v10", "added k/3=7 v11", "removed k/gate=g v14 relist()")
	if diff := cmp.Diff(snapshotContents(t, s, ephemeral.WithPrefix("k/")), mirrorContents(m)); diff != "" {
		t.Errorf("mirror differs from a fresh snapshot (-want +got):\n%s", diff)
	}
}

// switchBackend is a backend whose memstore a test can replace, as a Redis server restarted
// without its data: the subscriptions of the old one, and the snapshots and subscribes that
// reach it as it is replaced, fail like lost connections.
type switchBackend struct {
	mu     sync.Mutex
	cur    *memstore.Backend
	id     string
	limits backend.Limits
}

// Open remembers the ID and its limits, to open them on the current memstore on every call.
func (s *switchBackend) Open(id string, l backend.Limits) (backend.Store, error) {
	s.mu.Lock()
	s.id, s.limits = id, l
	s.mu.Unlock()
	if _, err := s.store(); err != nil {
		return nil, err
	}
	return switchStore{s}, nil
}

// store returns the store of the current memstore.
func (s *switchBackend) store() (backend.Store, error) {
	st, _, err := s.current()
	return st, err
}

// current returns the store of the current memstore, and that memstore.
func (s *switchBackend) current() (backend.Store, *memstore.Backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.cur.Open(s.id, s.limits)
	return st, s.cur, err
}

// lost returns err, or errTransport when err is the end of b, a memstore replaced since: a
// call that reached the old one as it was replaced fails as one on a lost connection would.
// (A mirror whose subscribe after its snapshot met the replacement stopped with ErrClosed,
// about one run in a thousand under -race.)
func (s *switchBackend) lost(b *memstore.Backend, err error) error {
	s.mu.Lock()
	replaced := s.cur != b
	s.mu.Unlock()
	if replaced && errors.Is(err, ephemeral.ErrClosed) {
		return errTransport
	}
	return err
}

// Close closes the current memstore.
func (s *switchBackend) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Close()
}

// replace makes b the backend and closes the old one.
func (s *switchBackend) replace(b *memstore.Backend) {
	s.mu.Lock()
	old := s.cur
	s.cur = b
	s.mu.Unlock()
	old.Close()
}

// switchStore is the backend.Store of a switchBackend.
type switchStore struct{ sw *switchBackend }

func (s switchStore) Upsert(ctx context.Context, tenant string, req backend.UpsertRequest) (backend.Entry, error) {
	st, err := s.sw.store()
	if err != nil {
		return backend.Entry{}, err
	}
	return st.Upsert(ctx, tenant, req)
}

func (s switchStore) Touch(ctx context.Context, tenant string, req backend.TouchRequest) (backend.TouchResult, error) {
	st, err := s.sw.store()
	if err != nil {
		return backend.TouchResult{}, err
	}
	return st.Touch(ctx, tenant, req)
}

func (s switchStore) TouchMany(ctx context.Context, tenant string, req backend.TouchManyRequest) ([]backend.TouchResult, error) {
	st, err := s.sw.store()
	if err != nil {
		return nil, err
	}
	return st.TouchMany(ctx, tenant, req)
}

func (s switchStore) Remove(ctx context.Context, tenant string, req backend.RemoveRequest) (bool, error) {
	st, err := s.sw.store()
	if err != nil {
		return false, err
	}
	return st.Remove(ctx, tenant, req)
}

func (s switchStore) Get(ctx context.Context, tenant, key string) (backend.Entry, bool, error) {
	st, err := s.sw.store()
	if err != nil {
		return backend.Entry{}, false, err
	}
	return st.Get(ctx, tenant, key)
}

func (s switchStore) Snapshot(ctx context.Context, tenant, prefix string) (backend.Snapshot, error) {
	st, b, err := s.sw.current()
	if err != nil {
		return backend.Snapshot{}, err
	}
	snap, err := st.Snapshot(ctx, tenant, prefix)
	return snap, s.sw.lost(b, err)
}

func (s switchStore) Subscribe(ctx context.Context, tenant string, req backend.SubscribeRequest) (backend.Subscription, error) {
	st, b, err := s.sw.current()
	if err != nil {
		return nil, err
	}
	sub, err := st.Subscribe(ctx, tenant, req)
	if err != nil {
		return nil, s.sw.lost(b, err)
	}
	return &lostSub{Subscription: sub}, nil
}

// lostSub turns the end of its backend into a transport error.
type lostSub struct {
	backend.Subscription
	closed atomic.Bool
}

func (s *lostSub) Next(ctx context.Context) (*backend.Event, error) {
	ev, err := s.Subscription.Next(ctx)
	if errors.Is(err, ephemeral.ErrClosed) && !s.closed.Load() {
		err = errTransport
	}
	return ev, err
}

func (s *lostSub) Close() error {
	s.closed.Store(true)
	return s.Subscription.Close()
}

func TestMirrorMemstoreReset(t *testing.T) {
	clock := memstore.NewFakeClock(time.Now().Truncate(time.Millisecond))
	sw := &switchBackend{cur: memstore.New(memstore.WithClock(clock))}
	t.Cleanup(func() { sw.Close() })
	s := newTestStore(t, sw)
	mustUpsert(t, s, "a", "1")
	mustUpsert(t, s, "b", "2")
	m := startMirror(t, s, ephemeral.WithBackoff(time.Millisecond, time.Millisecond))
	expectChanges(t, m.Changes(), "added a=1 v1", "added b=2 v2")

	fresh := memstore.New(memstore.WithClock(clock))
	s2 := newTestStore(t, fresh)
	mustUpsert(t, s2, "c", "3")
	mustUpsert(t, s2, "a", "1b")
	sw.replace(fresh)

	expectChanges(t, m.Changes(), "updated a=1b v2", "removed b=2 v2 relist()", "added c=3 v1")
	if diff := cmp.Diff(snapshotContents(t, s), mirrorContents(m)); diff != "" {
		t.Errorf("mirror differs from a fresh snapshot (-want +got):\n%s", diff)
	}
	mustUpsert(t, s, "d", "4")
	expectChanges(t, m.Changes(), "added d=4 v3")
}

// TestMirrorProperty runs random writes, expiries and stalls of the change consumer against a
// memstore that keeps few events, and checks that the mirror ends equal to a fresh snapshot
// and that its changes, replayed from nothing, give the same state.
func TestMirrorProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		maxEvents := rapid.IntRange(1, 3).Draw(rt, "maxEvents")
		clock := memstore.NewFakeClock(time.Now().Truncate(time.Millisecond))
		b := memstore.New(memstore.WithClock(clock))
		defer b.Close()
		cfg := textConfig("mirror", time.Minute)
		cfg.Limits.MaxEvents = maxEvents
		s, err := ephemeral.New(b, cfg)
		if err != nil {
			rt.Fatal(err)
		}
		ctx := context.Background()
		keys := []string{"a", "b", "c", "d"}

		var gate sync.Mutex // held by the test while the consumer stalls
		changes := make(chan ephemeral.Change[string, text], 10_000)
		m, err := s.Mirror(func(c ephemeral.Change[string, text]) {
			gate.Lock()
			changes <- c
			gate.Unlock()
		}, ephemeral.WithMirrorClock(clock.Now))
		if err != nil {
			rt.Fatal(err)
		}
		defer m.Close()
		readyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := m.Ready(readyCtx); err != nil {
			rt.Fatal(err)
		}

		step := func(i int) {
			key := rapid.SampledFrom(keys).Draw(rt, "key")
			var err error
			switch rapid.IntRange(0, 4).Draw(rt, "op") {
			case 0, 1:
				ttl := time.Duration(rapid.IntRange(1, 3).Draw(rt, "ttl")) * time.Second
				_, err = s.Upsert(ctx, key, text{strconv.Itoa(i)}, ephemeral.WithTTL(ttl))
			case 2:
				_, err = s.Touch(ctx, key)
			case 3:
				_, err = s.Remove(ctx, key)
			case 4:
				clock.Advance(time.Second)
			}
			if err != nil {
				rt.Fatal(err)
			}
		}
		for i := range rapid.IntRange(0, 20).Draw(rt, "before") {
			step(i)
		}
		// Stall the consumer: the mirror stops at its next change while the writes go on, and
		// enough upserts follow to drop events it has not read.
		gate.Lock()
		stalled := true
		defer func() { // before m.Close, which waits for the stalled callback
			if stalled {
				gate.Unlock()
			}
		}()
		for i := range rapid.IntRange(0, 20).Draw(rt, "stalled") {
			step(100 + i)
		}
		for _, key := range keys {
			if rapid.Bool().Draw(rt, "remove") {
				if _, err := s.Remove(ctx, key); err != nil {
					rt.Fatal(err)
				}
			}
		}
		for i := range maxEvents + 2 {
			if _, err := s.Upsert(ctx, "pad", text{strconv.Itoa(150 + i)}); err != nil {
				rt.Fatal(err)
			}
		}
		gate.Unlock()
		stalled = false
		for i := range rapid.IntRange(0, 20).Draw(rt, "after") {
			step(200 + i)
		}

		// A last write: once its change arrived, the mirror has reported everything before it
		// (in a relist too, as its key sorts last).
		end, err := s.Upsert(ctx, "~end", text{"end"}, ephemeral.WithTTL(time.Hour))
		if err != nil {
			rt.Fatal(err)
		}
		replayed := map[string]string{}
		timeout := time.After(30 * time.Second)
		for done := false; !done; {
			select {
			case c := <-changes:
				if c.Kind == ephemeral.ChangeRemoved {
					delete(replayed, c.Key)
				} else {
					replayed[c.Key] = fmt.Sprintf("%s=%s v%d", c.Key, c.Entry.Value.S, c.Entry.Version)
				}
				done = c.Key == end.Key && c.Version == end.Version
			case <-timeout:
				rt.Fatalf("no change for the last write; mirror %q", mirrorContents(m))
			}
		}
		snap, err := s.Snapshot(ctx)
		if err != nil {
			rt.Fatal(err)
		}
		var want []string
		for _, e := range snap.Entries {
			want = append(want, fmt.Sprintf("%s=%s v%d", e.Key, e.Value.S, e.Version))
		}
		if diff := cmp.Diff(want, mirrorContents(m)); diff != "" {
			rt.Fatalf("mirror differs from a fresh snapshot (-want +got):\n%s", diff)
		}
		got := slices.Sorted(maps.Values(replayed))
		if diff := cmp.Diff(want, got); diff != "" {
			rt.Fatalf("replayed changes differ from a fresh snapshot (-want +got):\n%s", diff)
		}
	})
}

// BenchmarkMirrorFollow measures the latency of one upsert until a mirror reports it, against a
// reader that receives the same event (the baseline).
func BenchmarkMirrorFollow(b *testing.B) {
	ctx := context.Background()
	newStore := func(b *testing.B) *ephemeral.Store[string, text] {
		backend := memstore.New()
		b.Cleanup(func() { backend.Close() })
		s, err := ephemeral.New(backend, textConfig("bench", time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	b.Run("reader", func(b *testing.B) {
		s := newStore(b)
		r, err := s.Reader(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		for i := 0; b.Loop(); i++ {
			if _, err := s.Upsert(ctx, keys[i%len(keys)], text{"v"}); err != nil {
				b.Fatal(err)
			}
			if _, err := r.Recv(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mirror", func(b *testing.B) {
		s := newStore(b)
		m, err := s.Mirror(nil, ephemeral.WithChangeChan(0))
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		if err := m.Ready(ctx); err != nil {
			b.Fatal(err)
		}
		for i := 0; b.Loop(); i++ {
			if _, err := s.Upsert(ctx, keys[i%len(keys)], text{"v"}); err != nil {
				b.Fatal(err)
			}
			<-m.Changes()
		}
	})
}

// BenchmarkMirrorGet measures a mirror's Get of one of 1,000 entries, against a lookup in a
// map guarded by a sync.RWMutex (the baseline).
func BenchmarkMirrorGet(b *testing.B) {
	ctx := context.Background()
	backend := memstore.New()
	defer backend.Close()
	s, err := ephemeral.New(backend, textConfig("bench", time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 1000)
	baseline := make(map[string]ephemeral.Entry[string, text], len(keys))
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
		e, err := s.Upsert(ctx, keys[i], text{"v"})
		if err != nil {
			b.Fatal(err)
		}
		baseline[keys[i]] = e
	}
	m, err := s.Mirror(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if err := m.Ready(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("map", func(b *testing.B) {
		var mu sync.RWMutex
		for i := 0; b.Loop(); i++ {
			mu.RLock()
			_, ok := baseline[keys[i%len(keys)]]
			mu.RUnlock()
			if !ok {
				b.Fatal("missing")
			}
		}
	})
	b.Run("mirror", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, ok := m.Get(keys[i%len(keys)]); !ok {
				b.Fatal("missing")
			}
		}
	})
}
