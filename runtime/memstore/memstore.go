// Package memstore is the in-memory [runtime.Backend] of ephemeral: the state of every
// (store ID, tenant) lives in this process. It is the backend of tests, demos and programs that
// run as a single process; runtime/redisstore shares state between processes.
//
// A [Backend] keeps, per (store ID, tenant), the live entries, a version counter and a ring
// buffer of the retained events, bounded by the limits of the store that calls it (the limits
// of the latest call win when stores with different limits share a tenant). All its state is
// guarded by one mutex. Values are kept and returned without copying: neither the caller of
// Upsert nor the receiver of an entry or event may modify them. Times are returned in UTC.
//
// Expiry is driven by one min-heap over the entries of all tenants and one timer, served by one
// goroutine per Backend: an entry is removed, with its expire event, when its ExpiresAt comes,
// whether or not anything else happens. Every call also removes the entries due by then before
// it does its work, so capacity never counts an expired entry. Times are kept in milliseconds
// (clock readings are truncated), as in Redis. [WithClock] replaces the system clock, for
// example by a [FakeClock] in tests.
//
// A tenant's state is created, with a fresh epoch ([runtime.NewEpoch]), by the first upsert,
// snapshot or reader of the tenant. It is freed once it has had no live entries and no open
// readers for its whole event retention, so that it has no retained events either; a cursor of
// the freed state then yields an overflow event, like one of a Redis server that lost its data.
//
// Close a Backend to stop its goroutine and end its readers.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ephemeral-go/ephemeral/runtime"
)

// Backend is an in-memory [runtime.Backend]. Any number of stores may share one. It is safe
// for concurrent use.
type Backend struct {
	clock   Clock
	timer   Timer
	done    chan struct{} // closed by Close
	stopped chan struct{} // closed when the scheduler goroutine has returned

	mu      sync.Mutex
	closed  bool
	tenants map[scopeKey]*tenant
	recent  *tenant // the tenant of the latest call, to skip the map lookup in a run of calls
	heap    expiryHeap
	armed   int64 // ms the timer is set for, or never
}

var _ runtime.Backend = (*Backend)(nil)

// Option configures a [Backend].
type Option func(*Backend)

// WithClock makes the backend read time from c and set its expiry timer on c instead of the
// system clock.
func WithClock(c Clock) Option {
	return func(b *Backend) { b.clock = c }
}

// New returns an empty backend and starts its expiry scheduler. Close it when done.
func New(opts ...Option) *Backend {
	b := &Backend{
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		tenants: make(map[scopeKey]*tenant),
		armed:   never,
	}
	for _, o := range opts {
		o(b)
	}
	if b.clock == nil {
		b.clock = newSystemClock()
	}
	b.timer = b.clock.NewTimer()
	go b.run()
	return b
}

// Close stops the expiry scheduler, ends every subscription (a blocked Next returns
// [runtime.ErrClosed]) and drops all state. Later calls fail with [runtime.ErrClosed]. Close
// is idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	b.mu.Unlock()

	<-b.stopped
	b.timer.Stop()
	b.mu.Lock()
	b.tenants, b.recent, b.heap = nil, nil, nil
	b.mu.Unlock()
	return nil
}

// now returns the clock's time in milliseconds since the Unix epoch.
func (b *Backend) now() int64 { return b.clock.Now().UnixMilli() }

// lock locks the backend for a call and returns the time of the call.
func (b *Backend) lock(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, runtime.ErrClosed
	}
	return b.now(), nil
}

// lockReconciled is lock, and then removes the entries that are due. Release with unlock.
func (b *Backend) lockReconciled(ctx context.Context) (int64, error) {
	now, err := b.lock(ctx)
	if err == nil {
		b.expireDue(now, -1)
	}
	return now, err
}

// unlock rearms the expiry timer for the changes made under the lock, then unlocks.
func (b *Backend) unlock() {
	b.rearm()
	b.mu.Unlock()
}

// tenant returns the state of s, creating it if needed, and records the call at now.
func (b *Backend) tenant(s runtime.Scope, now int64) *tenant {
	if t := b.lookup(s, now); t != nil {
		return t
	}
	t := &tenant{
		name:    scopeKey{s.ID, s.Tenant},
		epoch:   runtime.NewEpoch(),
		entries: make(map[string]*entry),
		limits:  s.Limits.WithDefaults(),
		last:    now,
	}
	t.sweep = entry{t: t, index: -1}
	b.tenants[t.name] = t
	b.scheduleSweep(t)
	return t
}

// lookup returns the state of s, or nil if there is none, and records the call at now.
func (b *Backend) lookup(s runtime.Scope, now int64) *tenant {
	t := b.find(s)
	if t != nil {
		t.limits = s.Limits.WithDefaults()
		t.last = now
	}
	return t
}

// lookupEntry is lookup, and the live entry at key in the tenant's state (nil if either is
// missing).
func (b *Backend) lookupEntry(s runtime.Scope, now int64, key string) (*tenant, *entry) {
	t := b.lookup(s, now)
	if t == nil {
		return nil, nil
	}
	return t, t.entries[key]
}

// find returns the state of s, or nil if there is none.
func (b *Backend) find(s runtime.Scope) *tenant {
	if t := b.recent; t != nil && t.name.tenant == s.Tenant && t.name.id == s.ID {
		return t
	}
	t := b.tenants[scopeKey{s.ID, s.Tenant}]
	if t != nil {
		b.recent = t
	}
	return t
}

// Upsert creates or replaces req.Key; see [runtime.Backend].
func (b *Backend) Upsert(ctx context.Context, s runtime.Scope, req runtime.UpsertRequest) (runtime.RawEntry, error) {
	now, err := b.lockReconciled(ctx)
	if err != nil {
		return runtime.RawEntry{}, err
	}
	defer b.unlock()
	t := b.tenant(s, now)
	e := t.entries[req.Key]
	if err := checkCond(req.Cond, req.Key, e); err != nil {
		return runtime.RawEntry{}, err
	}
	if e == nil {
		if len(t.entries) >= t.limits.MaxEntries {
			return runtime.RawEntry{}, fmt.Errorf("%w: new key %q, %d live entries", runtime.ErrCapacity, req.Key, len(t.entries))
		}
		e = &entry{key: req.Key, created: now, t: t, index: -1}
		t.entries[req.Key] = e
	}
	e.value = req.Value
	e.updated = now
	e.expires = now + req.TTL.Milliseconds()
	e.version = t.appendEvent(event{
		kind:    runtime.EventUpsert,
		at:      now,
		key:     e.key,
		value:   e.value,
		created: e.created,
		expires: e.expires,
	})
	b.schedule(e)
	return e.raw(), nil
}

// Touch extends the TTL of a live key; see [runtime.Backend].
func (b *Backend) Touch(ctx context.Context, s runtime.Scope, req runtime.TouchRequest) (runtime.TouchResult, error) {
	now, err := b.lockReconciled(ctx)
	if err != nil {
		return runtime.TouchResult{}, err
	}
	defer b.unlock()
	t, e := b.lookupEntry(s, now, req.Key)
	if err := checkCond(req.Cond, req.Key, e); err != nil || e == nil {
		return runtime.TouchResult{}, err
	}
	e.expires = now + req.TTL.Milliseconds()
	if !req.Quiet {
		e.updated = now
		e.version = t.appendEvent(event{kind: runtime.EventTouch, at: now, key: e.key, expires: e.expires})
	}
	b.schedule(e)
	return runtime.TouchResult{OK: true, Version: e.version, ExpiresAt: msTime(e.expires)}, nil
}

// Remove deletes a live key; see [runtime.Backend].
func (b *Backend) Remove(ctx context.Context, s runtime.Scope, req runtime.RemoveRequest) (bool, error) {
	now, err := b.lockReconciled(ctx)
	if err != nil {
		return false, err
	}
	defer b.unlock()
	t, e := b.lookupEntry(s, now, req.Key)
	if err := checkCond(req.Cond, req.Key, e); err != nil || e == nil {
		return false, err
	}
	delete(t.entries, e.key)
	b.unschedule(e)
	t.appendEvent(event{kind: runtime.EventDelete, at: now, key: e.key, reason: req.Reason})
	if t.idle() {
		b.scheduleSweep(t)
	}
	return true, nil
}

// Get returns a live entry; see [runtime.Backend].
func (b *Backend) Get(ctx context.Context, s runtime.Scope, key string) (runtime.RawEntry, bool, error) {
	now, err := b.lock(ctx)
	if err != nil {
		return runtime.RawEntry{}, false, err
	}
	defer b.mu.Unlock()
	t := b.find(s)
	if t == nil {
		return runtime.RawEntry{}, false, nil
	}
	e := t.entries[key]
	if e == nil || e.expires <= now {
		return runtime.RawEntry{}, false, nil
	}
	return e.raw(), true, nil
}

// Snapshot returns the live entries with a key prefix and the cursor of the same instant; see
// [runtime.Backend].
func (b *Backend) Snapshot(ctx context.Context, s runtime.Scope, prefix string) (runtime.RawSnapshot, error) {
	now, err := b.lockReconciled(ctx)
	if err != nil {
		return runtime.RawSnapshot{}, err
	}
	defer b.unlock()
	t := b.tenant(s, now)
	var entries []runtime.RawEntry
	for key, e := range t.entries {
		if strings.HasPrefix(key, prefix) {
			entries = append(entries, e.raw())
		}
	}
	slices.SortFunc(entries, func(x, y runtime.RawEntry) int { return strings.Compare(x.Key, y.Key) })
	return runtime.RawSnapshot{Entries: entries, Cursor: t.cursor(t.seq)}, nil
}

// checkCond returns an error wrapping [runtime.ErrConflict] unless c holds for key, whose live
// entry is e (nil if none).
func checkCond(c runtime.Condition, key string, e *entry) error {
	switch c.Kind {
	case runtime.CondNone:
		return nil
	case runtime.CondIfNew:
		if e != nil {
			return fmt.Errorf("%w: key %q exists", runtime.ErrConflict, key)
		}
	case runtime.CondIfExists:
		if e == nil {
			return fmt.Errorf("%w: key %q does not exist", runtime.ErrConflict, key)
		}
	case runtime.CondIfVersion:
		if e == nil {
			return fmt.Errorf("%w: key %q does not exist, want version %d", runtime.ErrConflict, key, c.Version)
		}
		if e.version != c.Version {
			return fmt.Errorf("%w: key %q is at version %d, want %d", runtime.ErrConflict, key, e.version, c.Version)
		}
	default:
		return fmt.Errorf("%w: unknown condition kind %d", runtime.ErrInvalidConfig, c.Kind)
	}
	return nil
}
