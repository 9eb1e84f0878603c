// Package memstore is the in-memory backend of ephemeral (a [backend.Backend]): the state of
// every (store ID, tenant) lives in this process. It is the backend of tests, demos and programs
// that run as a single process; runtime/redisstore shares state between processes.
//
// A [Backend] keeps, per (store ID, tenant), the live entries, a version counter and a ring
// buffer of the retained events (a [backend.Log]), bounded by the limits the store ID was opened
// with (see [backend.Backend.Open]: one set of limits per store ID). All its state is guarded
// by one mutex but the log, which readers read without it: a reader takes the lock only to
// report an overflow, or to make the events it is the first to read of the log's records (see
// [backend.NewGuardedLog]: the log is guarded by the backend's lock, which a write holds
// anyway). A write appends its event under the lock and wakes the waiting readers after
// releasing it. Values are kept and returned without copying: neither the caller of Upsert nor
// the receiver of an entry or event may modify them (the typed API gives its readers copies).
//
// A reader checks the events it reads against the event retention by a clock reading taken
// after each wait and every 64 events: one that stops calling Next for longer than the
// retention may still get up to 63 events that the retention dropped meanwhile, before its
// overflow event.
//
// The entries of a tenant are in a hash map by key, for the calls on one key, and in a B-tree
// sorted by key (github.com/tidwall/btree), for snapshots: a snapshot scans the tree from its
// prefix and sorts nothing. Gets and snapshots hand out each version of a value with a
// [backend.Memo] of its own, in which the typed layer keeps the decoded value: a store whose
// codec can deep-copy values decodes each version of a value once, however often it is read.
//
// Expiry is driven by one min-heap over the entries of all tenants and one timer, served by one
// goroutine per Backend: an entry is removed, with its expire event, when its ExpiresAt comes,
// whether or not anything else happens. Every call also removes the entries due by then before
// it does its work, so capacity never counts an expired entry. Times are kept in milliseconds
// (clock readings are truncated), as in Redis. [WithClock] replaces the system clock, for
// example by a [FakeClock] in tests.
//
// A tenant's state is created by the first upsert, snapshot or reader of the tenant, with a
// fresh epoch: [backend.NewEpoch] of the clock's time, so that a later state's epoch sorts
// after an earlier one's. It is freed once it has had no live entries and no open
// readers for its whole event retention, so that it has no retained events either; a cursor of
// the freed state then yields an overflow event, like one of a Redis server that lost its data.
//
// [WithObserver] reports the events its readers get, with their age, the readers it opens and
// closes, the entries it expires and the writes it refuses to a [backend.Observer], such as
// the Prometheus adapter github.com/ephemeral-go/ephemeral/metrics/prom.
//
// Close a Backend to stop its goroutine and end its readers.
package memstore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// Backend is an in-memory [backend.Backend]. Any number of stores may share one. It is safe
// for concurrent use.
type Backend struct {
	clock  Clock
	system *systemClock // clock, when it is the system clock
	timer  Timer
	obs    backend.Observer
	// observed says that obs was given: a delivered event is worth a clock reading.
	observed bool
	done     chan struct{} // closed by Close, for the expiry scheduler (readers wait on their logs)
	down     atomic.Bool   // set by Close, for the readers that read without the lock
	stopped  chan struct{} // closed when the scheduler goroutine has returned

	mu     sync.Mutex
	closed bool
	stores map[string]*store // by store ID
	heap   expiryHeap
	armed  int64        // ms the timer is set for, or never
	wake   *backend.Log // a log appended to under the lock, to wake after it (see unlock)
}

var (
	_ backend.Backend          = (*Backend)(nil)
	_ backend.SnapshotAppender = (*store)(nil)
)

// Option configures a [Backend].
type Option func(*Backend)

// WithClock makes the backend read time from c and set its expiry timer on c instead of the
// system clock.
func WithClock(c Clock) Option {
	return func(b *Backend) { b.clock = c }
}

// WithObserver makes the backend report to o the events its readers get, the readers it opens
// and closes, the entries it expires and the writes it refuses (see [backend.Observer]; it
// reports all but the events with its lock held). The default reports nothing.
func WithObserver(o backend.Observer) Option {
	return func(b *Backend) { b.obs = o }
}

// New returns an empty backend and starts its expiry scheduler. Close it when done.
func New(opts ...Option) *Backend {
	b := &Backend{
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		stores:  make(map[string]*store),
		armed:   never,
	}
	for _, o := range opts {
		o(b)
	}
	if b.clock == nil {
		b.system = newSystemClock()
		b.clock = b.system
	}
	b.observed = b.obs != nil
	if b.obs == nil {
		b.obs = backend.NopObserver{}
	}
	b.timer = b.clock.NewTimer()
	go b.run()
	return b
}

// Close stops the expiry scheduler, ends every subscription (a blocked Next returns
// [backend.ErrClosed]) and drops all state. Later calls fail with [backend.ErrClosed]. Close
// is idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.down.Store(true)
	close(b.done)
	for _, st := range b.stores {
		for _, t := range st.tenants {
			t.log.Close() // wakes its readers, which then see down
			if t.readers > 0 {
				b.obs.Readers(st.id, t.name, -t.readers) // ended: their Close counts nothing
			}
		}
	}
	b.mu.Unlock()

	<-b.stopped
	b.timer.Stop()
	b.mu.Lock()
	for _, st := range b.stores {
		st.tenants, st.recent = nil, nil
	}
	b.heap = nil
	b.mu.Unlock()
	return nil
}

// Open returns the store with ID id; see [backend.Backend.Open].
func (b *Backend) Open(id string, l backend.Limits) (backend.Store, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, backend.ErrClosed
	}
	if st := b.stores[id]; st != nil {
		return st, backend.SameLimits(id, st.limits, l)
	}
	st := &store{b: b, id: id, limits: l, retention: l.EventRetention.Milliseconds(), tenants: make(map[string]*tenant)}
	b.stores[id] = st
	return st, nil
}

// store is one store ID of a Backend: a [backend.Store]. Its fields but b, id and limits are
// guarded by b.mu.
type store struct {
	b         *Backend
	id        string
	limits    backend.Limits
	retention int64 // limits.EventRetention in ms
	tenants   map[string]*tenant
	recent    *tenant // the tenant of the latest call, to skip the map lookup in a run of calls
}

// now returns the clock's time in milliseconds since the Unix epoch.
func (b *Backend) now() int64 {
	if b.system != nil {
		return b.system.unixMilli()
	}
	return b.clock.Now().UnixMilli()
}

// lock locks the backend for a call and returns the time of the call.
func (b *Backend) lock(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, backend.ErrClosed
	}
	return b.now(), nil
}

// lockReconciled is lock, and then removes the entries that are due. Release with unlock.
func (b *Backend) lockReconciled(ctx context.Context) (int64, error) {
	now, err := b.lock(ctx)
	if err == nil && len(b.heap) > 0 && b.heap[0].due <= now {
		b.expireDue(now, -1)
	}
	return now, err
}

// unlock rearms the expiry timer for the changes made under the lock, unlocks, and then wakes
// the readers of the events appended under the lock: a write never waits for that. (Nor does
// it hand them its processor, as a write to Redis does, see [backend.Handoff]: a write here
// takes a µs or two, and the readers' turn would make it many times longer.)
func (b *Backend) unlock() {
	b.rearm()
	l := b.wake
	b.wake = nil
	b.mu.Unlock()
	if l != nil {
		l.Wake()
	}
}

// tenant returns the state of tenant name, creating it if needed, and records the call at now.
func (st *store) tenant(name string, now int64) *tenant {
	if t := st.lookup(name, now); t != nil {
		return t
	}
	epoch := backend.NewEpoch(st.b.clock.Now())
	t := &tenant{
		st:      st,
		name:    name,
		epoch:   epoch,
		entries: make(map[string]*entry),
		log:     backend.NewGuardedLog(epoch, 0, st.limits.MaxEvents, &st.b.mu),
		index:   newIndex(),
		last:    now,
	}
	t.sweep = entry{t: t, index: -1}
	st.tenants[name] = t
	st.b.scheduleSweep(t)
	return t
}

// lookup returns the state of tenant name, or nil if there is none, and records the call at
// now.
func (st *store) lookup(name string, now int64) *tenant {
	t := st.find(name)
	if t != nil {
		t.last = now
	}
	return t
}

// lookupEntry is lookup, and the live entry at key in the tenant's state (nil if either is
// missing).
func (st *store) lookupEntry(name string, now int64, key string) (*tenant, *entry) {
	t := st.lookup(name, now)
	if t == nil {
		return nil, nil
	}
	return t, t.entries[key]
}

// find returns the state of tenant name, or nil if there is none.
func (st *store) find(name string) *tenant {
	if t := st.recent; t != nil && t.name == name {
		return t
	}
	t := st.tenants[name]
	if t != nil {
		st.recent = t
	}
	return t
}

// Upsert creates or replaces req.Key; see [backend.Store].
func (st *store) Upsert(ctx context.Context, tenant string, req backend.UpsertRequest) (ent backend.Entry, err error) {
	b := st.b
	now, err := b.lockReconciled(ctx)
	if err != nil {
		return backend.Entry{}, err
	}
	defer b.unlock()
	t := st.tenant(tenant, now)
	e := t.entries[req.Key]
	if err := st.check(tenant, req.Cond, req.Key, t, e); err != nil {
		return backend.Entry{}, err
	}
	if e == nil {
		if len(t.entries) >= st.limits.MaxEntries {
			err := backend.CapacityError(req.Key, st.limits.MaxEntries)
			b.obs.Refused(st.id, tenant, err)
			return backend.Entry{}, err
		}
		e = &entry{key: req.Key, created: now, t: t, index: -1}
		t.entries[req.Key] = e
		t.index.Set(e)
	}
	e.value, e.memo = req.Value, nil
	e.updated = now
	e.expires = now + req.TTL.Milliseconds()
	e.version = t.appendEvent(&backend.Event{
		Kind:      backend.EventUpsert,
		At:        now,
		Key:       e.key,
		Value:     e.value,
		CreatedAt: e.created,
		ExpiresAt: e.expires,
	})
	b.schedule(e)
	e.fill(&ent, nil) // in place (see fill)
	return ent, nil
}

// Touch extends the TTL of a live key; see [backend.Store].
func (st *store) Touch(ctx context.Context, tenant string, req backend.TouchRequest) (backend.TouchResult, error) {
	b := st.b
	now, err := b.lockReconciled(ctx)
	if err != nil {
		return backend.TouchResult{}, err
	}
	defer b.unlock()
	t, e := st.lookupEntry(tenant, now, req.Key)
	if err := st.check(tenant, req.Cond, req.Key, t, e); err != nil || e == nil {
		return backend.TouchResult{}, err
	}
	return st.touch(t, e, now, req.TTL, req.Quiet), nil
}

// touch extends the TTL of e, a live entry of t, at now. The backend's lock is held.
func (st *store) touch(t *tenant, e *entry, now int64, ttl time.Duration, quiet bool) backend.TouchResult {
	e.expires = now + ttl.Milliseconds()
	if !quiet {
		e.updated = now
		e.version = t.appendEvent(&backend.Event{Kind: backend.EventTouch, At: now, Key: e.key, ExpiresAt: e.expires})
	}
	st.b.schedule(e)
	return backend.TouchResult{OK: true, Version: e.version, ExpiresAt: e.expires}
}

// TouchMany touches req.Keys under one hold of the backend's lock, all at one instant; see
// [backend.Store].
func (st *store) TouchMany(ctx context.Context, tenant string, req backend.TouchManyRequest) ([]backend.TouchResult, error) {
	b := st.b
	now, err := b.lockReconciled(ctx)
	if err != nil {
		return nil, err
	}
	defer b.unlock()
	res := make([]backend.TouchResult, len(req.Keys))
	t := st.lookup(tenant, now)
	if t == nil {
		return res, nil
	}
	for i, k := range req.Keys {
		if e := t.entries[k]; e != nil {
			res[i] = st.touch(t, e, now, req.TTL, req.Quiet)
		}
	}
	return res, nil
}

// Remove deletes a live key; see [backend.Store].
func (st *store) Remove(ctx context.Context, tenant string, req backend.RemoveRequest) (bool, error) {
	b := st.b
	now, err := b.lockReconciled(ctx)
	if err != nil {
		return false, err
	}
	defer b.unlock()
	t, e := st.lookupEntry(tenant, now, req.Key)
	if err := st.check(tenant, req.Cond, req.Key, t, e); err != nil || e == nil {
		return false, err
	}
	t.delete(e)
	b.unschedule(e)
	t.appendEvent(&backend.Event{Kind: backend.EventDelete, At: now, Key: e.key, Reason: req.Reason}) // queues the sweep
	return true, nil
}

// Get returns a live entry; see [backend.Store].
func (st *store) Get(ctx context.Context, tenant, key string) (backend.Entry, bool, error) {
	b := st.b
	now, err := b.lock(ctx)
	if err != nil {
		return backend.Entry{}, false, err
	}
	defer b.mu.Unlock()
	t := st.find(tenant)
	if t == nil {
		return backend.Entry{}, false, nil
	}
	e := t.entries[key]
	if e == nil || e.expires <= now {
		return backend.Entry{}, false, nil
	}
	return e.read(), true, nil
}

// Snapshot returns the live entries with a key prefix and the cursor of the same instant; see
// [backend.Store].
func (st *store) Snapshot(ctx context.Context, tenant, prefix string) (backend.Snapshot, error) {
	return st.AppendSnapshot(ctx, tenant, prefix, nil)
}

// AppendSnapshot is Snapshot, with the entries appended to dst; see
// [backend.SnapshotAppender].
func (st *store) AppendSnapshot(ctx context.Context, tenant, prefix string, dst []backend.Entry) (backend.Snapshot, error) {
	b := st.b
	now, err := b.lockReconciled(ctx)
	if err != nil {
		return backend.Snapshot{}, err
	}
	defer b.unlock()
	t := st.tenant(tenant, now)
	n := len(t.entries)
	if prefix != "" {
		n = 0
		t.scan(prefix, func(*entry) { n++ })
	}
	i := len(dst)
	dst = slices.Grow(dst, n)[:i+n]
	t.scan(prefix, func(e *entry) {
		e.readInto(&dst[i])
		i++
	})
	return backend.Snapshot{Entries: dst, Cursor: t.cursor(t.seq)}, nil
}

// scan calls fn with the entries whose keys start with prefix, in key order.
func (t *tenant) scan(prefix string, fn func(*entry)) {
	t.index.Ascend(&entry{key: prefix}, func(e *entry) bool {
		if !strings.HasPrefix(e.key, prefix) {
			return false
		}
		fn(e)
		return true
	})
}

// delete removes e from the tenant's entries.
func (t *tenant) delete(e *entry) {
	delete(t.entries, e.key)
	t.index.Delete(e)
}

// check is c.Check for key, whose live entry is e (nil if none), in the tenant of that name,
// whose state is t (nil if none); it reports a refusal to the observer.
func (st *store) check(tenant string, c backend.Condition, key string, t *tenant, e *entry) error {
	var err error
	if e == nil {
		err = c.Check(key, false, "", 0)
	} else {
		err = c.Check(key, true, t.epoch, e.version)
	}
	if err != nil {
		st.b.obs.Refused(st.id, tenant, err)
	}
	return err
}
