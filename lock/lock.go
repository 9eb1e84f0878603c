// Package lock is a distributed mutex with fencing tokens, built on an ephemeral store: it runs
// on every backend (runtime/memstore in one process, runtime/redisstore across processes) and
// passes through the store's contract.
//
// A [Locker] keeps each lock as one entry, with a TTL, in a tenant of its own (the tenant is
// the lock's name) of one store ID. Acquiring is an upsert that succeeds only if the entry is
// not live ([ephemeral.IfNew]); the [Lease] it returns holds a fencing [Token], the (epoch,
// version) of that upsert. Extending is a quiet touch and releasing a remove, both guarded by
// the token ([ephemeral.IfCursor]), so a holder whose lease ran out can neither extend nor
// release the lease of the next holder. [Locker.Acquire] waits for the lock, woken by the
// lock's delete and expire events and by polling with backoff; the waiters of one Locker for
// one lock queue, first come first served, but those of different Lockers (processes) race,
// with no order; [Locker.WithLock] runs a function under the lock, keeps the lease alive and
// cancels the function's context when the lease is lost: when an extend or the lock's events
// say so, or when the lease's local deadline (the TTL less a tenth after the last extend that
// succeeded was sent) passes. That cancellation is a timer of this process, which a pause or a
// loaded machine can run late: fencing tokens (below) protect a resource where that matters.
// [WithObserver] reports every lease lost while held, with its reason ([LossDeadline],
// [LossGone]), for metrics (metrics/prom counts them) or logs.
//
// # Fencing tokens
//
// A lease can be lost while its holder still runs (a pause longer than the TTL, a partition), so
// a lock alone cannot protect a resource from a holder that has not yet noticed. Give the
// resource the lease's [Lease.Token] with every write and let it reject a token lower than the
// highest it has seen: tokens of one lock name strictly increase, from holder to holder, for the
// lock's whole life.
//
// Tokens order by (epoch, version), see [Token.Compare]. Versions increase within an epoch. The
// epoch changes when the lock's tenant is made anew: after the lock was free for longer than the
// store's event retention (its state expires with it), or after a Redis server lost its data (a
// restart without persistence, a FLUSHALL). A new epoch begins with the time it was made, on the
// backend's clock (the Redis server's clock), so it sorts after the old one and tokens keep
// increasing, unless that clock went back between the two (a restart on a machine whose clock is
// behind, a step of the clock) or the two were made in the same millisecond (which a lock's
// tenant cannot be: it lives at least its retention). A Redis server that goes back to older
// data hands out versions again: a failover to a replica that lacks the last writes
// (asynchronous replication), or a restart that loads a snapshot older than the last writes
// (RDB, or an AOF with appendfsync everysec, after a crash). Then two leases may have one
// token, and the older holder may extend or release the newer's lease. Use fencing tokens with
// a standalone server that either does not persist (its restart makes a new epoch) or writes
// its AOF with appendfsync always; failovers, and other persistence, weaken them. A lock whose
// state was made by an older version of this module has an epoch of 16 random hex digits, which
// orders with nothing: its tokens may sort before or after those of the next epoch, after which
// they increase again.
package lock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// Defaults of a [Locker].
const (
	DefaultStoreID  = "lock"
	DefaultTTL      = 10 * time.Second
	DefaultMinRetry = 10 * time.Millisecond
	DefaultMaxRetry = time.Second
	// MinTTL is the shortest TTL of a lease: one whose local deadline (see [Locker.WithLock])
	// leaves a margin of a few milliseconds, and that can be extended over a network.
	MinTTL = 10 * time.Millisecond
)

// key is the key of a lock's entry in its tenant.
const key = "lock"

// Errors, matched with [errors.Is].
var (
	// ErrNotAcquired: the lock is held by another lease; the error is a *[HeldError].
	ErrNotAcquired = errors.New("lock: held by another owner")
	// ErrLeaseLost: the lease expired or was taken over; the error is a *[LostError].
	ErrLeaseLost = errors.New("lock: lease lost")
)

// HeldError is the error of an acquire that found the lock held. It matches [ErrNotAcquired].
// Token, Owner and ExpiresAt describe the holder when it was seen (zero if it was gone by then).
type HeldError struct {
	Name      string
	Owner     string
	Token     Token
	ExpiresAt time.Time
}

// Error says which lease holds the lock, when it is known.
func (e *HeldError) Error() string {
	if e.Token == (Token{}) {
		return fmt.Sprintf("%v: lock %s", ErrNotAcquired, backend.Quote(e.Name))
	}
	return fmt.Sprintf("%v: lock %s is held by %s with token %s until %s", ErrNotAcquired,
		backend.Quote(e.Name), backend.Quote(e.Owner), e.Token, e.ExpiresAt.Format(time.RFC3339Nano))
}

// Is reports whether target is [ErrNotAcquired].
func (e *HeldError) Is(target error) bool { return target == ErrNotAcquired }

// LostError is the error of a lease that is lost: it expired (and maybe another owner took the
// lock), was released, or could not be extended before its expiry. It matches [ErrLeaseLost].
type LostError struct {
	Name   string
	Token  Token  // the lost lease's token
	Reason string // what showed the loss
}

// Error says which lease of which lock was lost, and why.
func (e *LostError) Error() string {
	return fmt.Sprintf("%v: lock %s token %s: %s", ErrLeaseLost, backend.Quote(e.Name), e.Token, e.Reason)
}

// Is reports whether target is [ErrLeaseLost].
func (e *LostError) Is(target error) bool { return target == ErrLeaseLost }

// Token is a fencing token: the epoch and version of the upsert that acquired a lease. Tokens of
// one lock name strictly increase from lease to lease (see the package documentation).
type Token struct {
	Epoch   string
	Version uint64
}

// Compare returns -1, 0 or +1 as t is before, equal to or after u: epochs first, as strings (an
// epoch begins with its time), then versions.
func (t Token) Compare(u Token) int {
	if c := strings.Compare(t.Epoch, u.Epoch); c != 0 {
		return c
	}
	switch {
	case t.Version < u.Version:
		return -1
	case t.Version > u.Version:
		return 1
	}
	return 0
}

// String returns the token's text form, "<epoch>-<version>", the cursor that
// [ephemeral.IfCursor] takes.
func (t Token) String() string {
	return backend.Cursor{Epoch: t.Epoch, Seq: t.Version}.String()
}

// ParseToken parses the text form of a token; an invalid one is an error wrapping
// [ephemeral.ErrInvalidCursor].
func ParseToken(s string) (Token, error) {
	c, err := backend.ParseCursor(s)
	if err != nil {
		return Token{}, err
	}
	return Token{Epoch: c.Epoch, Version: c.Seq}, nil
}

// Option configures a [Locker].
type Option func(*Locker)

// WithStoreID sets the store ID the locks are kept in (default "lock"). Lockers of one ID on one
// backend share their locks.
func WithStoreID(id string) Option { return func(l *Locker) { l.id = id } }

// WithOwner sets the owner recorded with every lease of the Locker, shown to the other owners
// in a [HeldError] (default: host name, process ID and a random suffix).
func WithOwner(owner string) Option { return func(l *Locker) { l.owner = owner } }

// WithTTL sets how long a lease lives unless extended (default 10 s), at least [MinTTL]; it is
// rounded up to a whole millisecond. [Locker.WithLock] extends at a third of it.
func WithTTL(ttl time.Duration) Option { return func(l *Locker) { l.ttl = ttl } }

// WithRetry sets the backoff of [Locker.Acquire] between attempts: it starts at min and doubles
// up to max, each wait drawn at random between half of it and all of it (default 10 ms to 1 s).
// A waiter is also woken at once when the lock is released or expires.
func WithRetry(min, max time.Duration) Option {
	return func(l *Locker) { l.minRetry, l.maxRetry = min, max }
}

// WithObserver sets the [Observer] told of the leases the Locker loses (default none).
func WithObserver(o Observer) Option { return func(l *Locker) { l.obs = o } }

// Observer receives the leases a [Locker] loses, for metrics or logs (the Observer of
// github.com/ephemeral-go/ephemeral/metrics/prom is one). Its method must be fast and must not
// block; calls come from many goroutines at once.
type Observer interface {
	// LeaseLost is called once for each lease that the Locker finds lost while it was held,
	// before its holder released it, with the reason: [LossDeadline] or [LossGone]; not for a
	// lease found gone while its own Release was in flight, or after one that failed, which
	// may have freed it. store is the Locker's store ID, name the lock's name. Lock names may
	// be unbounded (a lock per resource): an Observer that makes metric labels should not
	// make one per name.
	LeaseLost(store, name, reason string)
}

// The reasons a lease is lost, as [Observer.LeaseLost] reports them.
const (
	// LossDeadline: no extend succeeded before the lease's local deadline, nine tenths of the
	// TTL after the last one that did was sent, while fn ran, and [Locker.WithLock] cancelled
	// fn's context. (A deadline that passes after fn returned is not a loss: the release says
	// whether the lease was still held, and reports LossGone if it was not.)
	// The backend was slow or unreachable, or this process stalled (a GC pause, CPU
	// starvation): the lease may still be held on the backend, and WithLock releases it.
	LossDeadline = "deadline"
	// LossGone: an extend or a release, or the lock's events, found the lease no longer held
	// on the backend: it expired (its holder did not extend it in time, or the backend's clock
	// jumped), or the backend lost the lock's state (see package doc), and another owner may
	// hold the lock.
	LossGone = "gone"
)

// WithLimits sets the limits of the lock store (see [ephemeral.Limits]). The event retention
// is how long a free lock keeps its state, and so its epoch.
func WithLimits(lim ephemeral.Limits) Option { return func(l *Locker) { l.limits = lim } }

// Locker hands out leases on named locks. It is safe for concurrent use.
type Locker struct {
	id                 string
	owner              string
	ttl                time.Duration
	minRetry, maxRetry time.Duration
	limits             ephemeral.Limits
	obs                Observer // nil for none
	store              *ephemeral.Store[string, holder]
	// extendEvery is the period of WithLock's extends: a third of the TTL, or longer in tests
	// of a holder that stops extending.
	extendEvery time.Duration
	// waiting, if set (by tests), is called each time Acquire has failed a try and starts to
	// wait for the lock's events or its backoff.
	waiting func()

	mu     sync.Mutex
	queues map[string][]chan struct{} // by lock name: the Acquire calls in order; the first tries
}

// New returns a Locker whose locks live on b. It fails with an error wrapping
// [ephemeral.ErrInvalidConfig] (or another validation error of [ephemeral.New]) when an option
// is invalid.
func New(b ephemeral.Backend, opts ...Option) (*Locker, error) {
	l := &Locker{id: DefaultStoreID, ttl: DefaultTTL, minRetry: DefaultMinRetry, maxRetry: DefaultMaxRetry}
	for _, o := range opts {
		o(l)
	}
	if l.owner == "" {
		host, _ := os.Hostname()
		l.owner = host + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(rand.Uint64()%1e6, 10)
	}
	if l.minRetry <= 0 || l.maxRetry < l.minRetry {
		return nil, fmt.Errorf("%w: lock retry %v to %v, want 0 < min <= max", ephemeral.ErrInvalidConfig, l.minRetry, l.maxRetry)
	}
	s, err := ephemeral.New(b, ephemeral.Config[string, holder]{ID: l.id, TTL: l.ttl, Limits: l.limits, Codec: holderCodec{}})
	if err != nil {
		return nil, err
	}
	l.store, l.ttl = s, s.DefaultTTL()
	if l.ttl < MinTTL {
		return nil, fmt.Errorf("%w: lock TTL %v, want at least %v", ephemeral.ErrInvalidConfig, l.ttl, MinTTL)
	}
	l.extendEvery = max(l.ttl/3, time.Millisecond)
	return l, nil
}

// TTL returns the TTL of the Locker's leases.
func (l *Locker) TTL() time.Duration { return l.ttl }

// safeTTL is how long after sending an acquire or extend a lease is taken to be held: the TTL
// less a tenth, a margin for late timers and clocks that run at different rates, and less a
// millisecond, as an expiry is a whole millisecond of the backend's clock (its time rounded
// down, plus the TTL) and may come up to a millisecond before the TTL has passed.
func (l *Locker) safeTTL() time.Duration { return l.ttl - l.ttl/10 - time.Millisecond }

// TryAcquire takes the lock name if it is free, without waiting. It fails with a *[HeldError]
// ([ErrNotAcquired]) when the lock is held, with [ephemeral.ErrInvalidTenant] when name is empty
// or longer than [ephemeral.MaxTenantBytes], or with the backend's error.
//
// An acquire whose outcome is unknown (its connection lost in flight, or its ctx ended while
// the call was out) reads the lock once more, on a context of its own, and releases it if the
// acquire took it, so that the lock is not held by nobody until its TTL; if that read fails
// too, it may be.
func (l *Locker) TryAcquire(ctx context.Context, name string) (*Lease, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	for range 3 {
		sent := time.Now()
		v := holder{Owner: l.owner, AcquiredAt: sent.UnixMilli(), Nonce: rand.Uint64()}
		e, err := l.store.Upsert(ctx, key, v, ephemeral.WithTenant(name), ephemeral.IfNew())
		if err == nil {
			return l.lease(name, e, sent), nil
		}
		if !errors.Is(err, ephemeral.ErrConflict) {
			return nil, l.unknown(ctx, name, v, sent, err)
		}
		h, ok, err := l.store.Get(ctx, key, ephemeral.WithTenant(name))
		if err != nil {
			return nil, err
		}
		if ok && h.Value.is(v) {
			// This acquire, applied once and then sent again after a network error (by a
			// backend that does so), conflicted with itself.
			return l.lease(name, h, sent), nil
		}
		if ok {
			return nil, &HeldError{Name: name, Owner: h.Value.Owner, Token: Token{h.Epoch, h.Version}, ExpiresAt: h.ExpiresAt}
		}
		// Released between the two calls: try again.
	}
	return nil, &HeldError{Name: name}
}

// lease returns the lease of lock name whose entry is e, acquired by a call sent at sent.
func (l *Locker) lease(name string, e ephemeral.Entry[string, holder], sent time.Time) *Lease {
	return &Lease{l: l, name: name, token: Token{e.Epoch, e.Version}, expiresAt: e.ExpiresAt, deadline: sent.Add(l.safeTTL())}
}

// unknown handles an acquire of lock name, with the value v, sent at sent, that failed with
// err, an error that leaves its outcome unknown (a lost connection, a ctx that ended while the
// call was in flight): the upsert may have been applied, and then the lock would be held by
// nobody until its TTL ran out. It reads the lock, on a context of its own (a second at most),
// and releases it if this acquire took it; it returns err.
func (l *Locker) unknown(ctx context.Context, name string, v holder, sent time.Time, err error) error {
	if errors.Is(err, ephemeral.ErrClosed) || errors.Is(err, ephemeral.ErrInvalidTenant) {
		return err // not sent
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(l.ttl, time.Second))
	defer cancel()
	if h, ok, gerr := l.store.Get(gctx, key, ephemeral.WithTenant(name)); gerr == nil && ok && h.Value.is(v) {
		l.lease(name, h, sent).Release(gctx)
	}
	return err
}

// checkName returns the error of an invalid lock name, which speaks of the lock's name rather
// than of a tenant.
func checkName(name string) error {
	if name == "" || len(name) > ephemeral.MaxTenantBytes {
		return fmt.Errorf("%w: lock name of %d bytes, want 1 to %d (a lock's name is the tenant it is kept in)", ephemeral.ErrInvalidTenant, len(name), ephemeral.MaxTenantBytes)
	}
	return nil
}

// Acquire takes the lock name, waiting until it is free or ctx ends. A waiter tries again when
// the lock's holder releases it or its lease expires (it reads the lock's events), and after
// each backoff wait of [WithRetry] in case an event is missed. When ctx ends it returns an error
// that matches ctx.Err() and, if the lock was held or the call was queued behind other Acquire
// calls (see below), [ErrNotAcquired]; a try that fails with the backend's error ends it with
// that error.
//
// The Acquire calls of one Locker for one name queue, first come first served: only the first
// tries the lock, and the next tries once it returns, so that a goroutine that releases the
// lock and at once asks for it again waits behind the others instead of taking it back before
// the release's event has woken them. Across Lockers (other processes) there is no queue: each
// Locker's first waiter tries when the lock's events wake it or its backoff ends, and whichever
// upsert the backend applies first wins, so a Locker's waiters can lose to another's any
// number of times. [Locker.TryAcquire] does not queue: it takes a free lock whoever waits.
func (l *Locker) Acquire(ctx context.Context, name string) (*Lease, error) {
	if err := checkName(name); err != nil {
		return nil, err // before it queues: an invalid name never waits
	}
	if err := l.enqueue(ctx, name); err != nil {
		// It never tried the lock: it waited for this Locker's Acquire calls before it, one
		// of which tries it (the lock is held, or about to be).
		return nil, fmt.Errorf("lock %s: %w while queued behind this Locker's earlier Acquire calls (%w)", backend.Quote(name), err, &HeldError{Name: name})
	}
	defer l.dequeue(name)
	lease, err := l.TryAcquire(ctx, name)
	if !errors.Is(err, ErrNotAcquired) {
		return lease, err
	}
	// Read the lock's events from now on, then try again: a release after the reader started
	// wakes the loop, one before it lets the next try succeed.
	wake, ready, stop := l.watch(ctx, name, "")
	defer stop()
	<-ready
	held := err
	wait := l.minRetry
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		lease, err = l.TryAcquire(ctx, name)
		switch {
		case errors.Is(err, ErrNotAcquired):
			held = err
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("lock %s: %w (%w)", backend.Quote(name), ctx.Err(), held)
		default:
			return lease, err
		}
		if l.waiting != nil {
			l.waiting()
		}
		timer.Reset(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: %w (%w)", backend.Quote(name), ctx.Err(), held)
		case <-wake:
		case <-timer.C:
			wait = min(2*wait, l.maxRetry)
		}
	}
}

// enqueue puts the caller at the end of the queue of lock name and returns once it is first,
// or with ctx's error, having left the queue, when ctx ends first. A caller that enqueue
// returned nil to must call dequeue when it is done.
func (l *Locker) enqueue(ctx context.Context, name string) error {
	turn := make(chan struct{})
	l.mu.Lock()
	if l.queues == nil {
		l.queues = map[string][]chan struct{}{}
	}
	q := append(l.queues[name], turn)
	l.queues[name] = q
	l.mu.Unlock()
	if len(q) == 1 {
		// First at once: no one waits before it, so an ended ctx is for the try to report
		// (a select would pick one of the two ready cases at random and, half the time,
		// report a free lock as held).
		return nil
	}
	select {
	case <-turn:
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	first := l.queues[name][0] == turn // made first meanwhile: pass the turn on
	if !first {
		l.queues[name] = slices.DeleteFunc(l.queues[name], func(c chan struct{}) bool { return c == turn })
	}
	l.mu.Unlock()
	if first {
		l.dequeue(name)
	}
	return ctx.Err()
}

// dequeue removes the first of the queue of lock name, the caller, and makes the next first.
func (l *Locker) dequeue(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.queues[name][1:]
	if len(q) == 0 {
		delete(l.queues, name)
		return
	}
	l.queues[name] = q
	close(q[0])
}

// watch reads the events of lock name, after the cursor after ("" for now), and sends on wake
// (without blocking: one pending value at most) at every delete, expire or overflow event, and
// when the reading ends. ready is closed once the reader has started (or failed to). stop ends
// the reading and waits for it.
func (l *Locker) watch(ctx context.Context, name, after string) (wake, ready <-chan struct{}, stop func()) {
	opts := []ephemeral.ReaderOption{ephemeral.WithTenant(name)}
	if after != "" {
		opts = append(opts, ephemeral.After(after))
	}
	ctx, cancel := context.WithCancel(ctx)
	ch, up := make(chan struct{}, 1), make(chan struct{})
	var wg sync.WaitGroup
	notify := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	wg.Go(func() {
		// A reader that fails or ends (the backend closed, say) wakes the waiter too: it
		// tries at once and learns what happened, instead of waiting for its backoff.
		defer notify()
		r, err := l.store.Reader(ctx, opts...)
		close(up)
		if err != nil {
			return
		}
		defer r.Close()
		for {
			ev, err := r.Recv(ctx)
			if err != nil && !errors.Is(err, ephemeral.ErrDecode) && !errors.Is(err, ephemeral.ErrInvalidKey) {
				return
			}
			switch ev.Kind {
			case ephemeral.EventDelete, ephemeral.EventExpire, ephemeral.EventOverflow:
				notify()
			}
		}
	})
	return ch, up, func() {
		cancel()
		wg.Wait()
	}
}

// WithLock runs fn while holding the lock name: it acquires the lock as [Locker.Acquire] does,
// extends the lease in the background every third of the TTL while fn runs, and releases it
// when fn returns. The ctx given to fn is cancelled, with a *[LostError] as its cause
// ([context.Cause]), the moment the lease is known to be lost: an extend failed because another
// lease replaced it, the lock's delete or expire event arrived, or no extend succeeded before
// the lease's expiry as seen from here: nine tenths of the TTL after the last successful extend
// (or the acquire) was sent, a margin for late timers and clock rates, so that fn's ctx ends
// before another owner can take the lock. fn should stop writing to the protected resource
// then; its writes carry the lease's token for the resource to fence them.
//
// WithLock returns fn's error, joined with the *LostError if the lease was lost, or with the
// error of the release; fn may release the lease itself, early, with [Lease.Release]. It fails
// without running fn when the lock cannot be acquired. It releases the lease also when fn
// panics, and when the lease was lost only by its local deadline (the release, guarded by the
// token, frees the lock if the backend still has it).
//
// "Before another owner can take the lock" holds while the backend keeps the lease until its
// TTL on its clock: not when a Redis server loses its data (a restart without persistence, a
// FLUSHALL; the lock is free at once) or its clock jumps forward (the lease expires early).
// Fencing tokens still order such holders (see the package documentation).
func (l *Locker) WithLock(ctx context.Context, name string, fn func(ctx context.Context, lease *Lease) error) error {
	lease, err := l.Acquire(ctx, name)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { lease.keepAlive(fctx, cancel, done) })
	// end stops the extends and releases the lease: when fn returns, and when it panics.
	end := func() error {
		close(done)
		wg.Wait()
		cancel(nil) // before the release: fn's ctx is done before another owner can take the lock
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl)
		defer rcancel()
		if lease.released() {
			return nil // fn released it itself
		}
		// A lease lost by its local deadline may still be held on the backend: the release,
		// guarded by the token, frees it then, and does nothing to another owner's lease.
		rerr := lease.Release(rctx)
		if lost := lease.lostErr(); lost != nil && !lease.released() {
			return lost
		}
		return rerr
	}
	ended := false
	defer func() {
		if !ended { // fn panicked
			end()
		}
	}()
	err = fn(fctx, lease)
	ended = true
	return errors.Join(err, end())
}

// Lease is one holding of a lock, from [Locker.TryAcquire] or [Locker.Acquire]. It is safe for
// concurrent use.
type Lease struct {
	l     *Locker
	name  string
	token Token

	mu        sync.Mutex
	expiresAt time.Time  // on the backend's clock, as last reported
	deadline  time.Time  // on this clock: the TTL after the last successful extend was sent
	lost      *LostError // set once the lease is known to be lost
	freed     bool       // the lease's own Release freed it
	// releaseTried says that a Release failed with an error that leaves its outcome unknown.
	releaseTried bool
	releasing    int // the Release calls in flight
}

// mayBeReleased returns why the lease's own Release may have freed it, when an Extend or a
// Release finds it gone: an earlier Release whose outcome is unknown, or one in flight (other
// than the caller's own, counted in own); "" if neither.
func (le *Lease) mayBeReleased(own int) string {
	le.mu.Lock()
	defer le.mu.Unlock()
	switch {
	case le.releaseTried:
		return "an earlier Release that failed may have released it"
	case le.releasing > own:
		return "a Release of it in flight may have released it"
	}
	return ""
}

// Name returns the lock's name.
func (le *Lease) Name() string { return le.name }

// Token returns the lease's fencing token. It stays the same for the lease's life: extending a
// lease does not change it.
func (le *Lease) Token() Token { return le.token }

// ExpiresAt returns the lease's expiry as the backend last reported it.
func (le *Lease) ExpiresAt() time.Time {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.expiresAt
}

// Extend resets the lease's TTL. It fails with a *[LostError] ([ErrLeaseLost]) when the lease
// is lost: it expired, was released, or another lease holds the lock. Any other error (the
// backend's) leaves the lease as it was: it may still be held until its expiry.
func (le *Lease) Extend(ctx context.Context) error {
	if err := le.lostErr(); err != nil {
		return err
	}
	sent := time.Now()
	res, err := le.l.store.Touch(ctx, key, ephemeral.WithTenant(le.name), ephemeral.Quiet(), ephemeral.IfCursor(le.token.String()))
	switch {
	case errors.Is(err, ephemeral.ErrConflict) || err == nil && !res.OK:
		if why := le.mayBeReleased(0); why != "" {
			// Not reported, as in Release: the lease's own Release may have freed it.
			return le.lose("", "extend: the lock is no longer held by this lease ("+why+")")
		}
		return le.lose(LossGone, "extend: the lock is no longer held by this lease (it expired, or the lock's state was lost; another owner may hold it)")
	case err != nil:
		return err
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	le.expiresAt, le.deadline = res.ExpiresAt, sent.Add(le.l.safeTTL())
	return nil
}

// Release frees the lock if this lease still holds it. It fails with a *[LostError]
// ([ErrLeaseLost]) when the lease had already been lost; then it released nothing, in
// particular not the lease of another owner.
//
// Any other error (the backend's) leaves the outcome unknown: the release may have been
// applied before the reply was lost. A Release called again after such an error that finds
// the lease gone fails with a *LostError whose Reason says that the earlier call may have
// released it.
func (le *Lease) Release(ctx context.Context) error {
	le.mu.Lock()
	le.releasing++
	le.mu.Unlock()
	defer func() {
		le.mu.Lock()
		le.releasing--
		le.mu.Unlock()
	}()
	ok, err := le.l.store.Remove(ctx, key, ephemeral.WithTenant(le.name), ephemeral.IfCursor(le.token.String()), ephemeral.WithReason("release"))
	switch {
	case errors.Is(err, ephemeral.ErrConflict) || err == nil && !ok:
		if why := le.mayBeReleased(1); why != "" {
			// Not reported: the lease's own Release may have freed it.
			return le.lose("", "release: the lock is no longer held by this lease ("+why+")")
		}
		return le.lose(LossGone, "release: the lock is no longer held by this lease")
	case err != nil:
		le.mu.Lock()
		le.releaseTried = true
		le.mu.Unlock()
		return err
	}
	le.mu.Lock()
	le.freed = le.lost == nil
	le.mu.Unlock()
	le.lose("", "released")
	return nil
}

// released reports whether the lease's own Release freed it (before it was known to be lost).
func (le *Lease) released() bool {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.freed
}

// lose records that the lease is lost, for reason unless it already was, and returns the
// *LostError. The first loss is reported to the Locker's Observer as loss (LossDeadline or
// LossGone), unless loss is "" (the lease's own Release).
func (le *Lease) lose(loss, reason string) *LostError {
	le.mu.Lock()
	first := le.lost == nil
	if first {
		le.lost = &LostError{Name: le.name, Token: le.token, Reason: reason}
	}
	lost := le.lost
	le.mu.Unlock()
	if first && loss != "" && le.l.obs != nil {
		le.l.obs.LeaseLost(le.l.id, le.name, loss)
	}
	return lost
}

func (le *Lease) lostErr() error {
	le.mu.Lock()
	defer le.mu.Unlock()
	if le.lost == nil {
		return nil // not a typed nil
	}
	return le.lost
}

// keepAlive extends the lease every third of the TTL until done is closed, and cancels ctx
// with the *LostError when the lease is lost: an extend conflicts, the lock's delete or expire
// event after the lease's token arrives, or the local deadline passes without an extend
// before done is closed (fn returned).
func (le *Lease) keepAlive(ctx context.Context, cancel context.CancelCauseFunc, done <-chan struct{}) {
	l := le.l
	// The events after the acquire: the first delete or expire of the key ends this lease.
	// An overflow leaves it unknown: an extend tells.
	wake, _, stop := l.watch(ctx, le.name, le.token.String())
	defer stop()
	// The local deadline is a timer of its own, not a case of the loop below: an extend may
	// take longer than its ctx allows (go-redis bounds a call by its ctx's deadline only with
	// Options.ContextTimeoutEnabled; else by its read timeouts and retries), and fn's ctx must
	// end at the deadline all the same.
	var expiry *time.Timer
	expiry = time.AfterFunc(time.Until(le.localDeadline()), func() {
		if ctx.Err() != nil {
			return // ended, or re-armed as it was stopped
		}
		if d := le.localDeadline(); time.Now().Before(d) {
			expiry.Reset(time.Until(d)) // extended since the timer was set
			return
		}
		select {
		case <-done:
			// fn returned before the deadline, and WithLock waits for an extend in flight
			// before it releases: fn did its work under a lease that was held, and the
			// release, guarded by the token, tells whether the backend still held it.
			cancel(nil)
			return
		default:
		}
		cancel(le.lose(LossDeadline, "not extended before its expiry: no extend succeeded within 0.9 of the TTL "+
			"(the backend slow or unreachable, or this process stalled; a longer TTL bears longer stalls)"))
	})
	defer expiry.Stop()
	ticker := time.NewTicker(l.extendEvery)
	defer ticker.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return // lost by the deadline (or the caller's ctx ended): nothing to extend
		case <-wake:
			if err := le.checkEvents(ctx); err != nil {
				cancel(err)
				return
			}
		case <-ticker.C:
			ectx, ecancel := context.WithDeadline(ctx, le.localDeadline())
			err := le.Extend(ectx)
			ecancel()
			var lost *LostError
			if errors.As(err, &lost) {
				cancel(lost)
				return
			}
		}
	}
}

// checkEvents is called when the lock's events show a delete, expire or overflow after the
// lease's token: the lease is lost unless an extend succeeds (which an overflow, or an event
// of a lease before the token, allows). A failed extend that is not definite leaves the lease
// to its deadline.
func (le *Lease) checkEvents(ctx context.Context) error {
	ectx, cancel := context.WithDeadline(ctx, le.localDeadline())
	defer cancel()
	err := le.Extend(ectx)
	var lost *LostError
	if errors.As(err, &lost) {
		return lost
	}
	return nil
}

func (le *Lease) localDeadline() time.Time {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.deadline
}
