package backend

import (
	"context"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Log is the shared log of one tenant's events of one epoch in a process: every reader of the
// tenant indexes into it, so an event is stored once however many readers it reaches. A
// backend appends the tenant's events in version order ([Log.Append]) and then wakes the
// readers ([Log.Wake]); readers read the events by version without locking ([Log.At]) and
// wait for the next wake-up each with a [Waiter] of its own ([Log.Await]), so a batch of
// events wakes every waiting reader once.
//
// A Log keeps at most its limit of events, the newest: a reader that falls further behind
// finds the event it needs gone and continues from the backend's own history (or with an
// overflow event, per [Overflow]).
//
// Events in a Log are immutable: the *Event that At returns is shared by every reader and
// must not be modified by any of them. Each carries a [Memo] for a value derived from it once
// per process, such as its decoded value. An append only fills a record in a ring allocated
// as the log grows; the *Event is made of it when a reader first needs it (see [Log.At]), so a
// log nobody reads allocates nothing per event (memstore keeps one for every tenant, read or
// not).
type Log struct {
	epoch string
	limit uint64

	// mu serializes the writes (Append, DropBefore, Close) and the readers who make an event
	// (see At). own says that it is the log's own, which the writes lock; the mu of a log made
	// by NewGuardedLog is its writer's, which the writer holds when it calls them.
	mu   *sync.Mutex
	own  bool
	slab []logItem // where the next events are made; guarded by mu
	size int       // the size of the last slab; guarded by mu

	ring atomic.Pointer[logRing]
	// floor is the oldest version not dropped by time or by a gap, head the last version
	// appended. The oldest a reader may read is the later of floor and the oldest within the
	// limit (see first): an append that drops an event for the limit stores nothing but head.
	floor  atomic.Uint64
	head   atomic.Uint64
	closed atomic.Bool

	// waiting says that waiters holds a reader to wake: Wake does nothing without one.
	waiting atomic.Bool
	wmu     sync.Mutex
	waiters []*Waiter // the readers to wake; guarded by wmu
	spare   []*Waiter // a slice for waiters, emptied by the last wake-up; guarded by wmu
	prune   int       // the length of waiters at which released ones are dropped; guarded by wmu
	// nextWake is the earliest time of the next wake-up, timer the deferred wake-up, pending
	// says that it is set; guarded by wmu.
	nextWake time.Time
	timer    *time.Timer
	pending  bool
}

// Waiter is how one reader waits: for the next wake-up of the log it registered with
// ([Log.Await]), for its own [Waiter.Signal] (say, its subscription's Close), or for the end of
// the context it waits with, whichever comes first. The reader blocks in a receive on a
// channel of its own, which costs less to wake than a select over a channel that every reader
// of the log shares, which each woken reader locks again: on memstore, 1,000 readers of 1,000
// events/s on 2 cores took 436–533 ns of CPU per delivery with Waiters, against 604–698 ns with
// such a select (10,000 readers: 4–8 % less; Redis: no change beyond the noise). A Waiter is
// for one goroutine at a time, but Signal and Release, which any may call.
type Waiter struct {
	c    chan struct{}       // one slot: a signal before a wait is not lost, and signals coalesce
	on   atomic.Pointer[Log] // the log whose waiters hold w, if any
	gone atomic.Bool         // released: a log that holds w may drop it

	mu   sync.Mutex
	done <-chan struct{} // the Done of the context whose end signals w
	stop func() bool     // stops that signal
}

// NewWaiter returns a Waiter.
func NewWaiter() *Waiter { return &Waiter{c: make(chan struct{}, 1)} }

// Signal wakes w's Wait, or makes the next one return at once.
func (w *Waiter) Signal() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// Wait blocks until w is signalled (by a log's wake-up, by Signal, or by the end of ctx) or
// timer fires, if it is not nil, and returns ctx.Err(). A signal may be one meant for an
// earlier wait: the caller checks again what it waits for, as it would after any wake-up.
func (w *Waiter) Wait(ctx context.Context, timer <-chan time.Time) error {
	// ctx.Err() only once done is closed: it locks the context, which many readers may share.
	// A done context is not watched: a reader that polls with one (as TryRecv does) keeps the
	// watch of the context it waits with.
	done := ctx.Done()
	if isClosed(done) {
		return ctx.Err()
	}
	if done != w.done {
		w.watch(ctx, done)
	}
	if timer == nil {
		<-w.c
	} else {
		select {
		case <-w.c:
		case <-timer:
		}
	}
	if isClosed(done) {
		return ctx.Err()
	}
	return nil
}

// isClosed reports whether done, a context's Done channel, is closed; a nil one never is.
func isClosed(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// watch makes the end of ctx, whose Done is done, signal w. A reader waits with the same
// context again and again, so the signal is set up once per context (per Done channel), not
// once per wait. Only the waiting goroutine writes w.done.
func (w *Waiter) watch(ctx context.Context, done <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stop != nil {
		w.stop()
	}
	w.done, w.stop = done, nil
	if done != nil && !w.gone.Load() { // Release sets gone before it takes mu
		w.stop = context.AfterFunc(ctx, w.Signal)
	}
}

// Release signals w and stops its watch of a context, for good: call it when the reader is
// done (its subscription closed), from any goroutine.
func (w *Waiter) Release() {
	w.gone.Store(true)
	w.mu.Lock()
	if w.stop != nil {
		w.stop()
		w.stop = nil
	}
	w.mu.Unlock()
	w.Signal()
}

// wakeSpacing is how long a wake-up holds off the next one, per reader it woke, so that each
// delivers the events of its interval in one batch: wake-ups of many readers come at most every
// few milliseconds (6 ms for 1,000 readers, 60 ms for 10,000). Waking a waiting reader and
// running it until it waits again cost about 3 µs of CPU besides its events when readers
// waited in a select (on 2 cores, from the CPU per delivery at 4, 6 and 8 µs), and an
// estimated 2 µs with a Waiter (from the CPU per delivery with and without one, at 1,000
// readers), so the wake-ups use at most about a third of a CPU however many readers there
// are. A shorter spacing buys latency with CPU: at 4 µs, 10,000 readers of 1,000 events/s
// took 8–46 % more CPU per delivery in alternating runs (with a select), for a p50 0–20 ms
// lower (docs/PERFORMANCE.md). A few readers are woken at once.
const wakeSpacing = 6 * time.Microsecond

// logRing holds the retained events by version, in slot v&mask: the record of each, which
// the writer fills, and the *Event made of it once a reader needs it. An event
// dropped for the limit keeps its slot until the slot is reused: its record and event (and so
// its key and value) stay reachable for at most as many appends as the ring has slots, fewer
// than twice the limit. Events dropped by time or by a gap are released at once.
type logRing struct {
	recs []logRec // guarded by Log.mu
	evs  []atomic.Pointer[Event]
	mask uint64
}

// logRec is what the log keeps of an event until a reader reads it: an append fills the slot
// of a ring allocated once, and allocates nothing. The epoch and the version are the log's and
// the slot's.
type logRec struct {
	kind    EventKind
	at      int64
	created int64
	expires int64
	key     string
	value   []byte
	reason  string
}

// logItem is the storage of one event with its memo, allocated in slabs.
type logItem struct {
	ev   Event
	memo Memo
}

// maxSlab is the most events a reader makes at once, and the most allocated at once; slabs
// start at one event and double.
const maxSlab = 64

// NewLog returns an empty log of the events of epoch after version head, keeping at most
// limit events (at least one).
func NewLog(epoch string, head uint64, limit int) *Log {
	l := NewGuardedLog(epoch, head, limit, new(sync.Mutex))
	l.own = true
	return l
}

// NewGuardedLog is NewLog for a writer that holds a lock of its own whenever it writes: the
// writer holds mu when it calls Append, DropBefore and Close, which then take no lock of
// their own, and readers take mu to make an event (see [Log.At]), so At must not be called
// with mu held. memstore's writes hold the backend's lock anyway, and save a lock per event.
func NewGuardedLog(epoch string, head uint64, limit int, mu *sync.Mutex) *Log {
	l := &Log{epoch: epoch, limit: uint64(max(limit, 1)), mu: mu}
	l.floor.Store(head + 1)
	l.head.Store(head)
	l.ring.Store(&noRing) // the first append makes one
	return l
}

// noRing is the ring of a log that has had no append: it has no slot. Most tenants with a
// reader are idle at any moment, and a ring of one slot cost each some 160 bytes, a tenth of
// what a tenant with a reader holds on Redis.
var noRing logRing

// newRing returns an empty ring of size slots, a power of two.
func newRing(size uint64) *logRing {
	return &logRing{recs: make([]logRec, size), evs: make([]atomic.Pointer[Event], size), mask: size - 1}
}

// Epoch returns the epoch of the log's events.
func (l *Log) Epoch() string { return l.epoch }

// Head returns the version of the last event appended (or the head the log started at).
func (l *Log) Head() uint64 { return l.head.Load() }

// First returns the version of the oldest event a reader may still read; First is Head+1
// when there is none.
func (l *Log) First() uint64 { return l.first(l.head.Load()) }

// first returns the version of the oldest event a reader may read, the head being head.
func (l *Log) first(head uint64) uint64 {
	first := l.floor.Load()
	if head >= l.limit {
		first = max(first, head-l.limit+1)
	}
	return first
}

// Append adds ev, an event of the log's epoch, after the events appended before it, in
// version order: its Epoch, After, FirstAvailable and Memo are not kept. An event at or below
// the head is ignored. An event after a gap (a version beyond head+1) drops every earlier event:
// a reader that had not read them finds them gone. Readers that read without waiting see the
// event at once; those that wait see it after the next [Log.Wake], which the writer calls when
// it has appended a batch (and, say, released the locks it held: waking thousands of readers
// takes a while).
func (l *Log) Append(ev *Event) {
	if l.own {
		l.mu.Lock()
		defer l.mu.Unlock()
	}
	v, head := ev.Version, l.head.Load()
	if l.closed.Load() || v <= head {
		return
	}
	r := l.ring.Load()
	first := l.first(head)
	if v != head+1 {
		for s := first; s <= head; s++ {
			r.drop(s)
		}
		first = v
		l.floor.Store(v)
	}
	// Beyond the limit, the oldest event is dropped by the head's move alone (see first), and
	// its slot released when it is reused (see logRing).
	if n := v - first + 1; n <= l.limit && n > uint64(len(r.recs)) {
		r = l.grow(r, first, head, n)
	}
	// Field by field, not as a logRec{...}: the compiler builds a composite literal on the
	// stack and copies it with 16-byte loads of its 8-byte stores, which the CPU cannot forward,
	// so the first load waits for the stores to reach the cache (on amd64, a quarter of
	// Append's samples in perf; none with the fields set in place: docs/PERFORMANCE.md).
	rec := &r.recs[v&r.mask]
	rec.kind, rec.at, rec.created, rec.expires = ev.Kind, ev.At, ev.CreatedAt, ev.ExpiresAt
	rec.key, rec.value, rec.reason = ev.Key, ev.Value, ev.Reason
	switch p := &r.evs[v&r.mask]; {
	case l.waiting.Load():
		// Readers wait: the wake-up will find the event made, instead of all of them taking
		// the lock to make it.
		l.makeAt(r, v)
	case p.Load() != nil:
		p.Store(nil) // the event of the slot's last record
	}
	l.head.Store(v)
}

// drop releases slot v: its record and the event made of it. l.mu is held.
func (r *logRing) drop(v uint64) {
	r.recs[v&r.mask] = logRec{}
	r.evs[v&r.mask].Store(nil)
}

// grow replaces r by a ring with room for n events (a power of two, at most the limit's),
// holding the events first to head, and returns it.
func (l *Log) grow(r *logRing, first, head, n uint64) *logRing {
	size := uint64(1) << bits.Len64(max(n, 2*uint64(len(r.recs)))-1)
	size = min(size, uint64(1)<<bits.Len64(l.limit-1))
	nr := newRing(size)
	for s := first; s <= head; s++ {
		nr.recs[s&nr.mask] = r.recs[s&r.mask]
		nr.evs[s&nr.mask].Store(r.evs[s&r.mask].Load())
	}
	l.ring.Store(nr)
	return nr
}

// At returns the event of version v. When it has none, wait reports whether the event is yet
// to come (v is after the head): the reader waits for it (see [Log.Await]). Otherwise it is gone
// (dropped, or the log is closed) and the reader must read it elsewhere.
//
// The event is made of its record by its [Log.Append] when readers wait, or else by
// its first reader, under the writers' lock, with the next events not made yet (up to
// maxSlab): a log that nobody reads costs its writer a record per event, and one that many
// read, one *Event per event.
func (l *Log) At(v uint64) (ev *Event, wait bool) {
	if l.closed.Load() {
		return nil, false
	}
	if v > l.head.Load() {
		return nil, true
	}
	r := l.ring.Load()
	if len(r.evs) == 0 {
		// No append yet (an append stores its ring before its head), so v is before the log.
		return nil, false
	}
	ev = r.evs[v&r.mask].Load()
	switch {
	case v < l.First():
		return nil, false
	case ev == nil || ev.Version != v:
		// Not made yet. (A slot from first to head holds its own event or none; the version
		// check only guards that.)
		return l.make(v), false
	}
	return ev, false
}

// make returns the event of version v, made of its record if no reader has made it yet, or nil
// when it is gone. It makes the next events that are not made yet too, up to maxSlab in all.
func (l *Log) make(v uint64) *Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	head := l.head.Load()
	if l.closed.Load() || v < l.first(head) || v > head {
		return nil
	}
	r := l.ring.Load()
	for u := v; u <= min(v+maxSlab-1, head); u++ {
		// Made already, or not: under the lock, a slot from first to head holds its own event
		// or none.
		if r.evs[u&r.mask].Load() == nil {
			l.makeAt(r, u)
		}
	}
	return r.evs[v&r.mask].Load()
}

// makeAt makes the event of version v of its record in r. l.mu is held.
func (l *Log) makeAt(r *logRing, v uint64) {
	if len(l.slab) == 0 {
		l.size = min(max(2*l.size, 1), maxSlab)
		l.slab = make([]logItem, l.size)
	}
	it, rec := &l.slab[0], &r.recs[v&r.mask]
	l.slab = l.slab[1:]
	it.ev = Event{Kind: rec.kind, Epoch: l.epoch, Version: v, Key: rec.key, At: rec.at,
		CreatedAt: rec.created, ExpiresAt: rec.expires, Value: rec.value, Reason: rec.reason, Memo: &it.memo}
	r.evs[v&r.mask].Store(&it.ev)
}

// Await registers w for the next [Log.Wake] or [Log.Close]. A reader registers first and then
// checks At again, and waits (w.Wait) only if At still says to wait: the appends it missed may
// have been woken for already, and may have dropped the event it needs as well as added it.
// Only the goroutine that waits with w registers it.
func (l *Log) Await(w *Waiter) {
	if w.on.Load() == l {
		return // registered, not woken yet
	}
	l.wmu.Lock()
	if l.waiters == nil {
		l.waiters, l.spare = l.spare, nil
	}
	l.waiters = append(l.waiters, w)
	w.on.Store(l)
	l.waiting.Store(true)
	if len(l.waiters) >= l.prune {
		// Readers that closed while nothing happened in the tenant stay here until its next
		// wake-up: drop them now and then, so that an idle tenant's churn of readers does not
		// grow the slice without bound.
		l.waiters = slices.DeleteFunc(l.waiters, func(w *Waiter) bool { return w.gone.Load() })
		l.prune = max(2*len(l.waiters), minPrune)
	}
	l.wmu.Unlock()
}

// minPrune is the fewest waiters a log holds before it drops the released ones.
const minPrune = 64

// Wake wakes the readers that wait: at once, or when many readers were woken just before, a
// little later (see wakeSpacing), so that one wake-up delivers the events of several appends.
// It returns how many readers it woke at once: none when none waited or the wake-up is
// deferred. A writer hands them the processor with [Handoff].
func (l *Log) Wake() (woken int) {
	if !l.waiting.Load() {
		// No reader waits. One about to wait has yet to check At again after its Await, and
		// finds the events then (the rule of Await), so there is nothing to wake.
		return 0
	}
	l.wmu.Lock()
	if l.pending {
		l.wmu.Unlock()
		return 0 // the deferred wake-up delivers these events too
	}
	if d := time.Until(l.nextWake); d > 0 {
		l.pending = true
		if l.timer == nil {
			l.timer = time.AfterFunc(d, func() { l.wakeNow() })
		} else {
			l.timer.Reset(d)
		}
		l.wmu.Unlock()
		return 0
	}
	l.wmu.Unlock()
	return l.wakeNow()
}

// wakeNow signals the readers that wait, and returns how many.
func (l *Log) wakeNow() int {
	l.wmu.Lock()
	ws := l.waiters
	l.waiters = nil
	l.pending = false
	l.nextWake = time.Now().Add(time.Duration(len(ws)) * wakeSpacing)
	l.waiting.Store(false)
	l.wmu.Unlock()
	for _, w := range ws {
		w.on.CompareAndSwap(l, nil)
		w.Signal()
	}
	n := len(ws)
	clear(ws)
	l.wmu.Lock()
	if l.spare == nil {
		l.spare = ws[:0]
	}
	l.wmu.Unlock()
	return n
}

// handoffMax is the most readers a write hands the processor to (see Handoff).
const handoffMax = 4

// Handoff lets the readers that a write just woke, woken of them (as [Log.Wake] returned), run
// before the writer goes on, when they are few (at most handoffMax): it yields the processor
// once. Go's scheduler runs a goroutine that another one readies on the other one's processor
// when that one next blocks, and a writer that goes on at once (to its next write, say) may
// block only tens of µs later: with the yield, a reader in the writer's process gets the event
// of a write to Redis before the write returns rather than 25-30 µs after (docs/PERFORMANCE.md).
// The write takes that much longer as the readers take to run, and in a process with other
// work as that work's turns take (the yield puts the writer behind them; redisstore's
// BenchmarkBusyProcess measures both): worth it for a write that took a round trip, not for
// one to memory. Under a fan-out the writer does not wait for thousands of readers: beyond
// handoffMax it goes on, and they run as they would. Call it with no lock held: a yield under
// a lock would hold up whoever waits for it.
func Handoff(woken int) {
	if woken > 0 && woken <= handoffMax {
		runtime.Gosched()
	}
}

// DropBefore drops the oldest events whose time (At) is before ms.
func (l *Log) DropBefore(ms int64) {
	if l.own {
		l.mu.Lock()
		defer l.mu.Unlock()
	}
	r := l.ring.Load()
	head := l.head.Load()
	first := l.first(head)
	start := first
	for ; first <= head && r.recs[first&r.mask].at < ms; first++ {
		r.drop(first)
	}
	if first != start { // a drop for the limit alone needs no store (see first)
		l.floor.Store(first)
	}
}

// Len returns the number of events the log holds.
func (l *Log) Len() int {
	head := l.head.Load()
	return int(head + 1 - l.first(head))
}

// Close ends the log: At returns no event any more (readers continue from the backend's
// history) and the waiting readers are woken. Appends are ignored from then on.
func (l *Log) Close() {
	if l.own {
		l.mu.Lock()
		defer l.mu.Unlock()
	}
	l.closed.Store(true)
	l.wmu.Lock()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.wmu.Unlock()
	l.wakeNow()
}

// Closed reports whether the log is closed.
func (l *Log) Closed() bool { return l.closed.Load() }
