package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// maxRead is the most stream entries (each of one or more events) one read of a pump or a
// catching-up reader returns.
const maxRead = 100

// Retry delays after a failed Redis call of a pump or a catching-up reader, and the poll
// interval of a reader that waits for its pump to see what the reader already read.
const (
	minRetry  = 10 * time.Millisecond
	maxRetry  = time.Second
	stalePoll = 20 * time.Millisecond
)

// failAfter is how long a pump's reads fail with errors that no retry fixes (a script error,
// junk in the tenant's keys) before its readers get the error.
const failAfter = 2 * time.Second

// ErrFeed is wrapped by the error a reader gets when its tenant's events cannot be read for a
// while (about 2 s) for a reason that retrying does not fix, such as a script error or junk
// in the tenant's keys that the tick script fails on (then it wraps backend.ErrCorrupt too).
// The reader may go on calling Next: it gets the events once the cause is gone. Connection
// errors are retried without it, and junk entries in the stream are skipped with an overflow.
var ErrFeed = errors.New("redisstore: the tenant's events cannot be read")

// feedError returns the error of a reader of the tenant whose keys are keys, wrapping ErrFeed
// and err: it names the tenant's keys, where an operator finds the cause, and says what the
// reader does meanwhile.
func feedError(keys []string, err error) error {
	pattern := strings.TrimSuffix(keys[keyState], keySuffixes[keyState]) + "*"
	return fmt.Errorf("%w (keys %s; still retrying: Next delivers the events once the cause is gone): %w", ErrFeed, pattern, err)
}

// pump reads one tenant's events for all its subscriptions in a backend, and appends them to
// the tenant's shared log, which the subscriptions read. It blocks on nothing in Redis, and
// holds no goroutine while it waits: the tenant's notices (published by the scripts, received
// by the backend's hub) and the tenant's next expiry (a local timer set from the due time the
// reads and notices carry) start one, which ends when nothing is left to do (see rest). A
// notice that carries the events after its head has them appended to the log on the hub's
// goroutine (see notify); another notice of events it has not seen makes it read the events
// after its head (readTail: one round trip, on the command pool); notices that arrive during a
// read make one more read. When an expiry is due it runs the tick script first, which expires
// the due entries and publishes their events if another Backend watches the tenant (see the
// package doc, "Notices"); the pump reads them after its tick.
type pump struct {
	b       *Backend
	st      *store // its limits drive the scripts
	key     tenantKey
	keys    []string
	channel string // the tenant's notice channel
	hub     atomic.Pointer[hub]
	// rn is what the pump's goroutine needs, made when it first starts (see start): the pump
	// of a tenant whose readers wait while nothing happens never runs, and holds none of it.
	rn atomic.Pointer[pumpRun]
	// started says that the pump's goroutine runs: a kick starts it, and it ends when it has
	// nothing to do (see rest). Meanwhile the hub appends the notices that continue the log
	// on its own goroutine.
	started atomic.Bool
	// startAt, guarded by mu, is the timer that starts the goroutine when the tenant's next
	// expiry is due, while it does not run: a timer costs less than a goroutine that waits
	// (see wakeAt, rest).
	startAt *time.Timer

	// log is the tenant's shared log of the epoch the pump last saw: deliver appends to it,
	// the subscriptions read it. resync replaces it.
	log atomic.Pointer[backend.Log]
	// written is the highest version of the pump's epoch this backend's writes returned since
	// the pump last found the tenant made anew or gone back (see step); with the log's head,
	// it tells events that fell out of the stream (see trimmed). Set under mu; read without it.
	written atomic.Uint64
	// failure is the pump's failure that its subscriptions have to see (see fail), or nil
	// while its reads succeed.
	failure atomic.Pointer[feedFailure]
	// forks counts the times the pump found the tenant's history went back (see step): a
	// subscription made before the last of them re-reads from the start of what Redis has,
	// after an overflow, as its position may be of the history that is gone (see catchUp).
	forks atomic.Uint64
	// corrupt says that a call on the tenant's keys failed on junk (backend.ErrCorrupt) since
	// the last that succeeded, and the readers were made to read from Redis (see junk).
	corrupt atomic.Bool

	mu    sync.Mutex
	epoch string // the tenant's epoch as the pump last saw it
	head  uint64 // the last version the pump delivered (or started at)
	// headAt is the At of the event at head, the server's time of the call that made it (0 if
	// unknown): with head, it names a point of the tenant's history, which the checks compare
	// with Redis's (metaAt) to see a rollback the version does not show.
	headAt int64
	// suspect counts the writes and notices that told of a version the pump has at another
	// time (see differs), and checked is what suspect was when the last read that completed
	// was sent: until a read sent after the last of them completes, nothing extends the log,
	// whose head would otherwise move on into the new history and hide the old one's end
	// from that read (see otherHistory).
	suspect, checked uint64
	stale            bool          // the pump is to read the tenant
	busy             bool          // a step of the pump is between taking its head and delivering its read
	dueAt            time.Time     // when the tenant's next expiry is due, by the local clock; zero if never
	subs             *subscription // the first of its subscriptions, which link the others (see join)
	// settled says that the pump has seen the tenant's head in Redis since it was made and
	// since the hub's connection was last lost (at settled-1 losses of the hub): a check
	// found the pump at it, or a read of the pump delivered up to it. 0 if never.
	settled uint64
	// wEpoch and wSeq are the epoch and the highest version of the writes of this backend
	// that returned since the pump was made, or since its last step began whose read found
	// the tenant made anew or gone back, or was delivered up to the head it read (the writes
	// that returned before are behind that head, or gone: see step); wEpoch is "" before the
	// first, mixedEpochs once they were of more than one epoch or maybe of a history that is
	// gone (see noteWrites). sEpoch and sSeq are the same of the writes that returned since
	// the pump's last step began; wForks is the store's forks when the pump last found the
	// tenant gone back, or when it was made.
	wEpoch, sEpoch string
	wSeq, sSeq     uint64
	wForks         uint64
	// ahead holds the events of this backend's writes of the pump's epoch that returned
	// before those of an earlier write (two calls of a tenant may be in flight), in version
	// order, for the log once the earlier ones are in it (see noteWrites).
	ahead []backend.Event
}

// pumpRun is what a pump's goroutine needs, made when it first starts.
type pumpRun struct {
	ctx    context.Context // canceled when the pump stops
	cancel context.CancelFunc
	kick   chan struct{} // wakes the goroutine; one slot, so that kicks coalesce
}

// maxAhead is the most events a pump holds in ahead: more, and it reads the tenant instead.
const maxAhead = 1024

// mixedEpochs is a pump's wEpoch once the writes of the backend were of several epochs of the
// tenant, or maybe of a timeline the tenant went back from (see step): no epoch is named so, and
// attachLive then reads.
const mixedEpochs = "-"

// Subscribe implements [backend.Store]. It reads the tenant's epoch and head (creating the
// tenant's meta when absent), so the subscription's start is fixed when it returns, and joins
// the tenant's pump, starting it (and subscribing its notices) if this is the tenant's first
// subscription in the backend. A tenant whose pump is live (see attachLive) needs no read:
// without req.After, the subscription starts at the pump's head, or at the last version a
// write of this backend returned if that is later; with one of the pump's epoch that is not
// after that version, at req.After (a reader after a snapshot, most often). Only a cursor
// beyond what the pump knows, or of another epoch, is checked against the tenant in Redis.
func (st *store) Subscribe(ctx context.Context, tenant string, req backend.SubscribeRequest) (backend.Subscription, error) {
	if err := st.b.check(); err != nil {
		return nil, err
	}
	if sub := st.attachLive(tenant, req.Prefix, req.After); sub != nil {
		return sub, nil
	}
	keys := st.keys(tenant)
	r, err := st.b.openRead(ctx, keys, st.limits)
	if err != nil {
		st.b.failed(tenantKey{st.id, tenant}, "open", err)
		return nil, fmt.Errorf("redisstore: subscribe: %w", err)
	}
	start := backend.Cursor{Epoch: r.epoch, Seq: r.head}
	if a := req.After; a != nil {
		if a.Epoch == r.epoch && a.Seq > r.head {
			return nil, fmt.Errorf("redisstore: subscribe after %v: %w: the tenant's last version is %d", a, backend.ErrInvalidCursor, r.head)
		}
		start = *a
	}
	sub := st.b.newSubscription(req.Prefix, start)
	p, created, stale, err := st.attach(tenant, sub, keys, r)
	if err != nil {
		return nil, err
	}
	if created {
		if err := st.b.listen(ctx, p); err != nil {
			sub.Close()
			return nil, fmt.Errorf("redisstore: subscribe: %w", err)
		}
	} else if stale {
		p.nudge()
	}
	return sub, nil
}

// attach adds sub to its tenant's pump, starting the pump if needed. It reports whether it
// made the pump, and whether the pump has yet to see the epoch of r, and should be nudged.
func (st *store) attach(tenant string, sub *subscription, keys []string, r readResult) (p *pump, created, stale bool, err error) {
	b := st.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, false, false, backend.ErrClosed
	}
	k := tenantKey{st.id, tenant}
	p = b.pumps[k]
	if p == nil {
		p = &pump{b: b, st: st, key: k, keys: keys, channel: channel(keys), epoch: r.epoch, head: r.head,
			// A write sent before a pump of the store found a tenant went back may be of a
			// history that is gone, also when its reply comes after that pump stopped.
			wForks: st.forks.Load()}
		p.setDue(r.due, r.now)
		p.log.Store(backend.NewLog(r.epoch, r.head, b.buffer))
		b.pumps[k] = p
		b.watch[p.channel] = p
		if !p.dueAt.IsZero() {
			p.armStart(p.dueAt)
		}
		if !b.polling {
			b.polling = true
			b.wg.Add(1)
			go b.poll()
		}
		created = true
	}
	p.mu.Lock()
	stale = r.epoch != p.epoch // the tenant's state was made anew since the pump's last read
	p.join(sub, !stale)
	p.mu.Unlock()
	return p, created, stale, nil
}

// attachLive returns a new subscription of the tenant, attached to its pump, if the tenant has
// a live pump: one that has seen the tenant's head in Redis since it was made and since the
// hub's connection was last lost (a check found it there, or it read the tenant up to the
// head), with no failure or junk pending, of the epoch of the writes of this backend. It starts
// at the pump's head or at the last version a write of this backend returned, whichever is
// later: every write that returned before is behind it. (A write whose version the pump missed,
// made before the pump was, was in Redis when the pump saw the head.) With after, it starts at
// after when that is of the pump's epoch and not beyond that start: a version the tenant had
// in Redis, so a valid cursor. It returns nil otherwise: Subscribe reads.
func (st *store) attachLive(tenant, prefix string, after *backend.Cursor) *subscription {
	b := st.b
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pumps[tenantKey{st.id, tenant}]
	if p == nil || b.closed.Load() || p.failure.Load() != nil || p.corrupt.Load() {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.settled == 0 || p.settled != p.losses()+1 || p.wEpoch != "" && p.wEpoch != p.epoch {
		return nil
	}
	start := backend.Cursor{Epoch: p.epoch, Seq: max(p.head, p.wSeq)}
	if after != nil {
		if after.Epoch != start.Epoch || after.Seq > start.Seq {
			return nil
		}
		start = *after
	}
	sub := b.newSubscription(prefix, start)
	p.join(sub, true)
	return sub
}

// newSubscription returns a subscription of the keys with prefix, after start, to attach to
// its tenant's pump.
func (b *Backend) newSubscription(prefix string, start backend.Cursor) *subscription {
	return &subscription{prefix: prefix, start: start, limit: b.buffer, pos: start, w: backend.NewWaiter()}
}

// join adds sub to the pump's subscriptions. With fromLog, sub reads the pump's log if its
// position is within it; otherwise it is lagging, and catches up from Redis first. p.mu is
// held.
//
// The subscriptions of a pump are a list linked through them, not a map: most tenants have one
// reader, and a map of one cost a tenant some 190 bytes, a tenth of what it holds.
func (p *pump) join(sub *subscription, fromLog bool) {
	sub.p = p
	if l := p.log.Load(); fromLog && sub.pos.Epoch == l.Epoch() && sub.pos.Seq+1 >= l.First() {
		sub.log = l
	}
	sub.nextSub = p.subs
	if p.subs != nil {
		p.subs.prevSub = sub
	}
	p.subs = sub
	sub.fork = p.forks.Load()
	p.b.obs.Readers(p.key.id, p.key.tenant, 1)
}

// leave removes sub from the pump's subscriptions, if it is one of them (stop may have taken
// it out). p.mu is held.
func (p *pump) leave(sub *subscription) {
	switch {
	case sub.prevSub != nil:
		sub.prevSub.nextSub = sub.nextSub
	case p.subs == sub:
		p.subs = sub.nextSub
	default:
		return // not listed
	}
	if sub.nextSub != nil {
		sub.nextSub.prevSub = sub.prevSub
	}
	sub.nextSub, sub.prevSub = nil, nil
}

// detach removes sub from its pump, and stops the pump and unsubscribes its notices when sub
// was its last subscription.
func (b *Backend) detach(sub *subscription) {
	p := sub.p
	b.obs.Readers(p.key.id, p.key.tenant, -1)
	b.mu.Lock()
	p.mu.Lock()
	p.leave(sub)
	last := p.subs == nil
	if last && p.startAt != nil {
		p.startAt.Stop() // a stopped pump waits for no expiry
	}
	p.mu.Unlock()
	if last && b.pumps[p.key] == p {
		delete(b.pumps, p.key)
		delete(b.watch, p.channel)
	}
	b.mu.Unlock()
	if last {
		p.cancel()
		if h := p.hub.Load(); h != nil {
			h.sync(context.Background(), p.channel, false)
		}
	}
}

// noteWrites records a batch of writes of this backend that returned, ops with their results
// res, the highest version they made being v (0 if none) of epoch, the call's tail, and the
// store's forks before the call was sent: a call sent before the pump last found the tenant
// went back (or, for a pump made since, before a pump of the store last found its tenant went
// back) may have run on the master that was lost, and the pump reads rather than take its
// versions and events for the new history's (see wEpoch). Otherwise it appends their events to
// the log when they continue it (see extend), so that this process's readers get them when the
// writes return. No notice of the call may come (the writes of a backend do not notify its own
// readers, see the package doc, "Notices"), so it does what a notice would: it keeps the events
// of a batch that returned before an earlier one (see ahead) until that one's are in; it makes
// the pump read when the batch made versions it cannot deliver (an expiry the script emitted
// before a write's event, say), or is of another epoch; and it wakes the pump earlier for an
// earlier expiry.
func (p *pump) noteWrites(epoch string, v uint64, ops []writeOp, res []writeResult, tail writeTail, forks uint64) {
	p.corrupt.Store(false)
	p.mu.Lock()
	gone := forks < p.wForks // sent before the pump last found the tenant went back (see wForks)
	if v > 0 && epoch == p.epoch && !gone {
		// Not a write of an older epoch whose reply came after the pump moved on (a FLUSHALL
		// while it was in flight): its version would make the new epoch's events look trimmed.
		p.written.Store(max(p.written.Load(), v)) // p.mu is held wherever written is set
	}
	switch {
	case v == 0:
	case gone:
		p.wEpoch, p.sEpoch = mixedEpochs, mixedEpochs
	default:
		addWrite(&p.wEpoch, &p.wSeq, epoch, v)
		addWrite(&p.sEpoch, &p.sSeq, epoch, v)
	}
	var l *backend.Log
	wake := false
	switch {
	case tail.last >= tail.first && gone:
		wake = true
	case tail.last >= tail.first && tail.last <= p.head && epoch == p.epoch:
		// Versions the log has (a read of the pump got them first), unless the tenant went
		// back and issued them again: then their events differ from the log's.
		if evs := writeEvents(ops, res); len(evs) > 0 {
			last := &evs[len(evs)-1]
			wake = p.differs(last.Version, last.At)
			if wake {
				p.suspect++
			}
		}
	case tail.last < tail.first:
		// No version made.
	case !p.continues(epoch):
		wake = true // another epoch, or a read in flight, which may have begun before the batch
	default:
		// Events of every version the batch made (its script may have emitted expiries,
		// which its writes do not tell), after the head or ahead of it: the log takes
		// them now, or after those of an earlier write, which then fill the gap when that
		// returns (this backend's; the pump reads if its call failed, see store.settle) or
		// their notice comes (another backend's). Otherwise the pump reads.
		evs := writeEvents(ops, res)
		whole := len(evs) > 0 && evs[0].Version == tail.first && evs[len(evs)-1].Version == tail.last
		switch {
		case whole && tail.first == p.head+1:
			l = p.extend(epoch, evs)
			wake = l == nil
		case whole && tail.first > p.head+1 && len(evs) <= p.st.limits.MaxEvents && len(p.ahead)+len(evs) <= maxAhead:
			p.pruneAhead()
			p.ahead = append(p.ahead, evs...)
			slices.SortStableFunc(p.ahead, func(a, b backend.Event) int { return cmp.Compare(a.Version, b.Version) })
		default:
			wake = true
		}
	}
	if wake {
		p.stale = true
	}
	due := p.earlierDue(tail.dueIn)
	p.mu.Unlock()
	// The writer's goroutine goes on to its caller: the readers it woke run first.
	backend.Handoff(p.wakeFor(l, wake, due))
}

// addWrite adds a write of version v of epoch to the writes whose epoch and highest version
// are *e and *s (see pump.wEpoch). p.mu is held.
func addWrite(e *string, s *uint64, epoch string, v uint64) {
	switch *e {
	case "":
		*e, *s = epoch, v
	case epoch:
		*s = max(*s, v)
	default:
		*e = mixedEpochs
	}
}

// earlierDue sets the pump's due time to dueIn ms from now (what a notice or a write's reply
// tells, -1 for no expiry) if that is earlier, and returns it, or zero. p.mu is held.
func (p *pump) earlierDue(dueIn int64) time.Time {
	if dueIn < 0 {
		return time.Time{}
	}
	at := time.Now().Add(time.Duration(dueIn) * time.Millisecond)
	if !p.dueAt.IsZero() && !at.Before(p.dueAt) {
		return time.Time{}
	}
	p.dueAt = at
	return at
}

// wakeFor wakes the readers of l, the log the pump appended to (nil if none), and the pump: to
// read now if read, or else at due if it is set (see earlierDue). It returns how many readers
// it woke at once (see [backend.Log.Wake]). p.mu is not held.
func (p *pump) wakeFor(l *backend.Log, read bool, due time.Time) (woken int) {
	if l != nil {
		woken = l.Wake()
	}
	switch {
	case read:
		p.wakeUp()
	case !due.IsZero():
		p.wakeAt(due)
	}
	return woken
}

// pruneAhead drops the events of ahead that the log has. p.mu is held.
func (p *pump) pruneAhead() {
	i := 0
	for i < len(p.ahead) && p.ahead[i].Version <= p.head {
		i++
	}
	p.ahead = slices.Delete(p.ahead, 0, i)
	if len(p.ahead) == 0 {
		p.ahead = nil
	}
}

// writeEvents returns the events of the writes ops, with their results res, from the first
// version they made on: it stops at the first version it cannot make (see noteWrites).
func writeEvents(ops []writeOp, res []writeResult) []backend.Event {
	var evs []backend.Event
	var next uint64
	for i, op := range ops {
		r := &res[i]
		if !r.ok || op.code == opTouchQuiet {
			continue // no event
		}
		if next == 0 {
			next = r.version
		}
		if r.version != next {
			break
		}
		ev := backend.Event{Epoch: r.epoch, Version: r.version, Key: op.key, At: r.updatedAt}
		switch op.code {
		case opUpsert:
			// The value is the caller's, which the backend may keep (see backend.Store.Upsert).
			ev.Kind, ev.CreatedAt, ev.ExpiresAt, ev.Value = backend.EventUpsert, r.createdAt, r.expiresAt, op.value
			if ev.Value == nil {
				ev.Value = []byte{} // as read from Redis
			}
		case opTouch:
			ev.Kind, ev.ExpiresAt = backend.EventTouch, r.expiresAt
		case opRemove:
			ev.Kind, ev.Reason = backend.EventDelete, string(op.value)
		}
		evs = append(evs, ev)
		next++
	}
	return evs
}

// extend appends evs, events of epoch, to the log if they are the next ones: of the pump's
// epoch, the first right after its head, no read of the pump in flight, and all still in the
// stream (a batch of more than MaxEvents events trims its first ones); then the events of
// ahead that continue them. It returns the log, to wake once p.mu is released, or nil when it
// appended nothing. p.mu is held, so that no resync swaps the log meanwhile.
func (p *pump) extend(epoch string, evs []backend.Event) *backend.Log {
	if len(evs) == 0 || !p.continues(epoch) || evs[0].Version != p.head+1 || len(evs) > p.st.limits.MaxEvents {
		return nil
	}
	l := p.log.Load()
	appendEvents(l, evs)
	p.head, p.headAt = evs[len(evs)-1].Version, evs[len(evs)-1].At
	p.pruneAhead()
	j := 0
	for j < len(p.ahead) && p.ahead[j].Version == p.head+1+uint64(j) {
		j++
	}
	if j > 0 {
		appendEvents(l, p.ahead[:j])
		p.head, p.headAt = p.ahead[j-1].Version, p.ahead[j-1].At
		p.pruneAhead()
	}
	return l
}

// appendEvents appends evs, at least one, to l and drops the events older than logWindow.
func appendEvents(l *backend.Log, evs []backend.Event) {
	for i := range evs {
		l.Append(&evs[i])
	}
	l.DropBefore(evs[len(evs)-1].At - logWindow.Milliseconds())
}

// continues reports whether events of epoch may extend the log now: it is of the pump's epoch,
// and no read of the pump is in flight. p.mu is held.
func (p *pump) continues(epoch string) bool {
	return epoch == p.epoch && !p.busy && p.suspect == p.checked
}

// losses returns how often the pub/sub connection of the pump's hub was lost (see hub).
func (p *pump) losses() uint64 {
	if h := p.hub.Load(); h != nil {
		return h.losses.Load()
	}
	return 0
}

// nudge makes the pump read the tenant.
func (p *pump) nudge() {
	p.mu.Lock()
	p.stale = true
	p.mu.Unlock()
	p.wakeUp()
}

// wakeUp kicks the pump, starting its goroutine if it has none yet. Before the goroutine
// first starts there is nothing to kick: what wakes a pump (a read to make, an expiry due)
// is in its state, which a goroutine checks when it starts (see rest).
func (p *pump) wakeUp() {
	if r := p.rn.Load(); r != nil {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	if !p.started.Load() {
		p.start()
	}
}

// start starts the pump's goroutine, unless it runs, the pump is stopped (no longer the
// backend's pump of its tenant: see detach, Close) or the backend is closed. b.mu and p.mu are
// not held.
func (p *pump) start() {
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() || b.pumps[p.key] != p || !p.started.CompareAndSwap(false, true) {
		return
	}
	if p.rn.Load() == nil {
		ctx, cancel := context.WithCancel(context.Background())
		p.rn.Store(&pumpRun{ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1)})
	}
	b.wg.Add(1)
	go p.run()
}

// cancel cancels the calls of the pump's goroutine, if it ever started, once the pump is
// stopped: taken out of the backend's pumps, under b.mu, which start holds when it makes what
// the goroutine needs.
func (p *pump) cancel() {
	if r := p.rn.Load(); r != nil {
		r.cancel()
	}
}

// notify handles a notice of the tenant, on the hub's goroutine. A notice that carries the
// events right after the pump's head, in its epoch, while no read of the pump is in flight,
// has its events appended to the log here, without a read. Otherwise the pump reads if the
// notice tells of events it has not delivered (a gap, another epoch, a notice without its
// events or junk). Either way the pump wakes earlier if the notice tells of an earlier
// expiry.
func (p *pump) notify(payload string) {
	n, ok := parseNotice(payload)
	var delivered *backend.Log
	p.mu.Lock()
	wake := !ok || n.epoch != p.epoch || n.head > p.head
	if wake {
		delivered = p.extend(n.epoch, n.events) // the last of which is n.head's
		wake = delivered == nil
	} else if n.at != 0 {
		// Versions the pump has: the same events, unless the tenant went back and issued
		// them again (see differs). The notice tells the time of its call also when its
		// events are too large to carry: a call that issued the pump's head again with such
		// events was taken for one the pump had, and the next notice's events continued the
		// log from the head of the history that was gone.
		wake = p.differs(n.head, n.at)
		if wake {
			p.suspect++
		}
	}
	if wake {
		p.stale = true
	}
	var due time.Time // an earlier expiry to wake for
	if ok {
		due = p.earlierDue(n.dueIn)
	}
	p.mu.Unlock()
	p.wakeFor(delivered, wake, due)
}

// rest ends the pump's goroutine when it has nothing to do but wait, and reports whether it
// did: a timer starts another when the tenant's next expiry is due (see wakeAt), a kick at
// once (see wakeUp). A waiting pump then costs no goroutine, with its stack: 10,000 tenants
// with a reader and an entry held 10,000 goroutines more, whose stacks the collector scanned
// while the readers opened (its work was most of the tail of their opens). It reports false,
// and the goroutine steps, when a read or an expiry is to be made, or a kick came while it
// was ending (into kick, the goroutine's channel) and no other goroutine took the kick.
func (p *pump) rest(kick chan struct{}) bool {
	p.mu.Lock()
	if p.stale || p.due() {
		p.mu.Unlock()
		return false
	}
	switch {
	case !p.dueAt.IsZero():
		p.armStart(p.dueAt)
	case p.startAt != nil:
		p.startAt.Stop()
	}
	// A nudge sets stale under p.mu, then wakes: it finds the goroutine ended and starts
	// another. A kick alone (wakeUp, wakeAt) may have found it still running: it is in
	// the kick channel now.
	p.started.Store(false)
	p.mu.Unlock()
	return len(kick) == 0 || !p.started.CompareAndSwap(false, true)
}

// due reports whether the tenant's next expiry is due by the local clock. p.mu is held.
func (p *pump) due() bool { return !p.dueAt.IsZero() && time.Until(p.dueAt) <= 0 }

// armStart sets the timer that starts the pump's goroutine at at. p.mu is held, or p is new.
func (p *pump) armStart(at time.Time) {
	if p.startAt == nil {
		p.startAt = time.AfterFunc(time.Until(at), p.wakeUp)
	} else {
		p.startAt.Reset(time.Until(at))
	}
}

// wakeAt makes the pump wake by at, for an expiry: a running goroutine is kicked, to see the
// new due time; otherwise a timer starts the goroutine at that time. A burst of first writes
// to many tenants that have readers (each notice tells of an expiry) then starts no
// goroutine, with its stack, until an expiry is due.
func (p *pump) wakeAt(at time.Time) {
	if p.started.Load() {
		p.wakeUp()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armStart(at)
}

// setDue sets the time of the tenant's next expiry from a due time and the time of the server
// that replied it. p.mu is held, or p is new.
func (p *pump) setDue(due, now int64) {
	p.dueAt = time.Time{}
	if due < never {
		p.dueAt = time.Now().Add(time.Duration(due-now) * time.Millisecond)
	}
}

// stop cancels the pump, which Close took out of the backend's pumps, and ends its
// subscriptions.
func (p *pump) stop() {
	p.cancel()
	p.mu.Lock()
	var subs []*subscription
	for s := p.subs; s != nil; {
		next := s.nextSub
		s.nextSub, s.prevSub = nil, nil
		subs = append(subs, s)
		s = next
	}
	p.subs = nil
	p.mu.Unlock()
	for _, s := range subs {
		if s.shut() { // else its Close came first, and counted it out
			p.b.obs.Readers(p.key.id, p.key.tenant, -1)
		}
	}
}

func (p *pump) run() {
	defer p.b.wg.Done()
	r := p.rn.Load() // made before the goroutine started
	var delay time.Duration
	var failing time.Time // since when the reads fail with errors that retries do not fix
	for {
		select {
		case <-r.kick:
		default:
			if r.ctx.Err() != nil || p.rest(r.kick) {
				return
			}
		}
		err := p.step(r.ctx)
		if r.ctx.Err() != nil {
			return
		}
		if err == nil {
			delay, failing = 0, time.Time{}
			p.failure.Store(nil)
			p.corrupt.Store(false)
			continue
		}
		p.junk(err)
		if !transient(err) {
			if failing.IsZero() {
				failing = time.Now()
			} else if time.Since(failing) >= failAfter {
				p.fail(feedError(p.keys, err))
			}
		}
		delay = nextDelay(delay)
		if !sleep(r.ctx, delay) {
			return
		}
	}
}

// step runs the tick script if an expiry is due, and reads and delivers the events after the
// pump's head if a notice or the tick asks for it, under ctx, the pump's. On an error, what it
// was to do stays to do.
func (p *pump) step(ctx context.Context) error {
	p.mu.Lock()
	tick := p.due()
	if !tick && !p.stale {
		p.mu.Unlock()
		return nil
	}
	p.stale = true // until the read succeeds
	// Until the read is delivered, notices do not append to the log: the read may return
	// the same events, and a head that a notice's events have passed.
	p.busy = true
	epoch, head, headAt := p.epoch, p.head, p.headAt
	// The writes of this backend that returned before the read is sent are in Redis when it
	// reads, unless the tenant went back: those of the pump's epoch (written), whatever the
	// epochs of the others (wEpoch).
	wEpoch, wSeq, written := p.wEpoch, p.wSeq, p.written.Load()
	p.sEpoch, p.sSeq = "", 0
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.busy = false
		p.mu.Unlock()
	}()

	// At most pumpCalls pumps of the backend use a pool connection at once: a burst of
	// notices (a write to each of many tenants, a redial) never takes the whole pool from
	// the writes and new readers.
	select {
	case p.b.pumpCalls <- struct{}{}:
		defer func() { <-p.b.pumpCalls }()
	case <-ctx.Done():
		return ctx.Err()
	}

	if tick {
		t, err := runTick(ctx, p.b.scripts, p.keys, p.st.limits, p.b.watcherID)
		if err != nil {
			p.b.failed(p.key, "tick", err)
			return err
		}
		if t.expired > 0 {
			p.b.obs.Expired(p.key.id, p.key.tenant, t.expired)
		}
	}
	p.mu.Lock()
	p.stale = false // notices from now on ask for another read
	suspect := p.suspect
	p.mu.Unlock()
	losses := p.losses()
	r, err := readTail(ctx, p.b.scripts, p.keys, p.st.limits, epoch, head, maxRead)
	if err != nil {
		err = scriptError(err)
		p.b.failed(p.key, "read", err)
		p.mu.Lock()
		p.stale = true
		p.mu.Unlock()
		return err
	}
	forked := false
	defer func() {
		p.mu.Lock()
		if p.epoch == r.epoch && p.head >= r.head {
			p.settled = losses + 1 // it delivered up to the head it read
			if !forked {
				// The writes of this backend that returned before the read was sent are
				// behind the head it read (written would have told otherwise), or gone
				// with a history that was lost (one sent before the pump found it, see
				// noteWrites): only those that returned since count (see attachLive).
				p.wEpoch, p.wSeq = p.sEpoch, p.sSeq
			}
		}
		p.mu.Unlock()
	}()
	p.mu.Lock()
	p.setDue(r.due, r.now) // after a tick, the next due time: again now if more were due
	p.checked = suspect    // a later suspicion waits for the read it asked for (stale)
	if r.epoch != p.epoch || r.head < p.head || r.epoch == wEpoch && r.head < wSeq || r.epoch == epoch && r.head < written ||
		p.head == head && otherHistory(r, head, headAt) {
		// The state was made anew (a new epoch), or went back (a failover to a replica
		// that lacked the last writes, seen by the pump's head or by the writes of this
		// backend: written, left above the tenant's head, would make the new history's
		// versions look trimmed to the readers, who would read them again without end):
		// every reader checks its position against Redis. The versions this
		// backend's writes returned before the read was sent are behind the head it read,
		// or gone; those that returned since are of the new epoch if they say so, and else
		// of a history that is gone, or of the new one, as are those that return later but
		// were sent before now: then new readers read where to start (see attachLive).
		forked = true
		same := r.epoch == p.epoch
		if same {
			// Went back within the epoch: positions of it may be of the history that is
			// gone. (Those of an older epoch get an overflow anyway.)
			p.forks.Add(1)
			p.wForks = p.st.forks.Add(1)
		}
		p.epoch, p.head, p.headAt = r.epoch, r.head, headTime(r)
		unknown := p.headAt == 0 && r.head > 0
		p.written.Store(0)
		p.wEpoch, p.wSeq = p.sEpoch, p.sSeq
		if same && p.wEpoch != "" {
			p.wEpoch = mixedEpochs
		}
		p.ahead = nil
		p.mu.Unlock()
		p.resync()
		p.b.verify(p) // registers the backend's readers in the new state (see watchFor)
		if unknown {
			p.nudge() // to learn the time of the head (see headTime)
		}
		return nil
	}
	p.mu.Unlock()
	var events []backend.Event
	for _, ev := range r.events {
		if ev.Version <= head {
			continue // the first entry read may hold events up to head too
		}
		if ev.Kind == 0 {
			p.b.failed(p.key, "read", errJunk) // the operator hears of it
		}
		if ev.Epoch != epoch || ev.Version != head+1 {
			// A gap (trimmed), or junk (an entry that is no event of the epoch, added by
			// another program): the readers catch up from Redis, which skips it.
			break
		}
		events = append(events, ev)
		head++
	}
	if len(events) == 0 && head < r.head {
		at := headTime(r)
		p.mu.Lock()
		p.head, p.headAt = r.head, at
		p.mu.Unlock()
		p.resync()
		if at == 0 {
			p.nudge() // to learn the time of the head (see headTime)
		}
		return nil
	}
	if len(events) == 0 && headAt == 0 {
		// The time of the head, unknown since the pump moved there without the event (see
		// headTime), or 0 still (an older writer's event, or one that is gone).
		if at := eventAt(r, epoch, head); at != 0 {
			p.mu.Lock()
			if p.head == head && p.headAt == 0 {
				p.headAt = at
			}
			p.mu.Unlock()
		}
	}
	p.deliver(events)
	if head < r.head {
		p.nudge() // more than one read returns
	}
	return nil
}

// differs reports whether the event the pump has at version v, at most its head, was made at
// another time than at, the time of an event of that version that a write or a notice tells
// of: then the tenant went back (a failover to a replica that lacked the last writes) and
// issued v again, and the pump is to read, which finds it out (see otherHistory). An event
// the pump no longer holds proves nothing. p.mu is held.
func (p *pump) differs(v uint64, at int64) bool {
	if v == p.head {
		return p.headAt != 0 && p.headAt != at
	}
	ev, _ := p.log.Load().At(v)
	return ev != nil && ev.Version == v && ev.At != at
}

// otherHistory reports whether the read r of the pump's epoch shows that the tenant's history is
// not the one the pump delivered up to head, whose event's At was headAt: the event at head, or
// Redis's last version if that is head, was made at another time. A failover to a replica that
// lacked the last writes issues their versions again, for other events, and once the new
// master passes the pump's head the versions alone no longer show it. An unknown time (0: a
// state written by an older version of this package, an event trimmed) proves nothing.
//
// The event at head, which the read holds while the stream does, is what it compares: every
// writer stamps its events, while the meta's time is only as recent as the last writer of
// this package's version that made a version (one of an older version, during an upgrade,
// leaves it behind). The meta's time serves when the event is gone, or is junk (an entry
// another program added, which has no time: the pump's head may be its version, skipped).
func otherHistory(r readResult, head uint64, headAt int64) bool {
	if headAt == 0 || r.epoch == "" {
		return false
	}
	for i := range r.events {
		if ev := &r.events[i]; ev.Version == head && ev.Kind != 0 {
			return ev.At != headAt
		}
	}
	return r.head == head && r.at != 0 && r.at != headAt
}

// headTime returns the time of the call that made r.head, the tenant's last version, for a pump
// whose head moves there without delivering it (a gap, a new epoch or history): that of its
// event when the read holds it, else 0, unknown, and the pump reads again, which holds the
// event at its head and tells its time (see eventAt). Not the meta's time: that is only as
// recent as the last writer of this package's version that made a version (one of an older
// version, during an upgrade, stamps its events but leaves #at behind), and the next read,
// which holds the event at the head, would take a head named by it for another history (see
// otherHistory).
func headTime(r readResult) int64 { return eventAt(r, r.epoch, r.head) }

// eventAt returns the time of the event of epoch at version v that the read r holds, or 0.
func eventAt(r readResult, epoch string, v uint64) int64 {
	for i := len(r.events) - 1; i >= 0; i-- {
		if ev := &r.events[i]; ev.Version == v && ev.Kind != 0 && ev.Epoch == epoch {
			return ev.At
		}
	}
	return 0
}

// verify has the pump checked by poll soon: its channel was just subscribed, and notices may
// have been published before (since Subscribe read the tenant, or while the connection was
// down).
func (b *Backend) verify(p *pump) {
	b.vmu.Lock()
	b.verifying = append(b.verifying, p)
	b.vmu.Unlock()
	select {
	case b.verifyKick <- struct{}{}:
	default:
	}
}

// poll checks the epoch and version of tenants with a pump, in pipelines of HMGETs, and makes
// the pumps whose tenant changed without a notice read it: those just subscribed (see
// verify), at once, and all of them every poll interval, for a reset where nothing is
// written (FLUSHALL, a restart without persistence). A few round trips for thousands of
// tenants, rather than a read each.
func (b *Backend) poll() {
	defer b.wg.Done()
	t := time.NewTicker(b.pollEvery)
	defer t.Stop()
	for {
		var pumps []*pump
		select {
		case <-b.done:
			return
		case <-b.verifyKick:
			b.vmu.Lock()
			pumps, b.verifying = b.verifying, nil
			b.vmu.Unlock()
		case <-t.C:
			b.probeHub(time.Now())
			b.mu.Lock()
			pumps = make([]*pump, 0, len(b.pumps))
			for _, p := range b.pumps {
				pumps = append(pumps, p)
			}
			b.mu.Unlock()
		}
		for chunk := range slices.Chunk(pumps, 500) {
			if !b.checkPumps(chunk) {
				break // Redis is unreachable: the next poll, or a notice
			}
		}
	}
}

// checkPumps reads the epoch, version and due time of the tenants of pumps and the server's
// time, and nudges the pumps that have not seen that version or whose tenant has an expiry
// due; it renews the backend's registration in the tenants where less than half of it is
// left (see renews). It reports whether Redis answered.
func (b *Backend) checkPumps(pumps []*pump) (ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), b.pollEvery)
	defer cancel()
	// The HMGETs' arguments in one slice, and replies of strings ("" for a missing field):
	// HMGet would box each field anew and reply with boxed strings, 18 allocations a tenant
	// where these take 6 (BenchmarkPollCheck), at every check, with thousands of tenants.
	const argc = 9
	args := make([]any, argc*len(pumps))
	cmds := make([]*redis.StringSliceCmd, len(pumps))
	losses := make([]uint64, len(pumps))
	for i, p := range pumps {
		losses[i] = p.losses()
		a := args[argc*i : argc*(i+1) : argc*(i+1)]
		a[0], a[1], a[2], a[3], a[4] = "hmget", p.keys[keyState], metaEpoch, metaSeq, metaDue
		a[5], a[6], a[7], a[8] = metaWatcher, metaWatched, metaShared, metaAt
		cmds[i] = redis.NewStringSliceCmd(ctx, a...)
	}
	var now *redis.TimeCmd
	_, _ = b.client.Pipelined(ctx, func(pl redis.Pipeliner) error {
		now = pl.Time(ctx)
		for _, cmd := range cmds {
			_ = pl.Process(ctx, cmd)
		}
		return nil
	})
	if err := now.Err(); err != nil && !b.closed.Load() {
		// The poll serves every store and tenant of the backend: reported once, with neither.
		// Its deadline is its own: the end of it is Redis not answering, not a caller gone.
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("redisstore: poll: no answer within the poll interval (%v)", b.pollEvery)
		}
		b.obs.Error("", "", "poll", err)
		b.lost(err)
	}
	serverNow := now.Val().UnixMilli()
	var renew []*pump
	for i, p := range pumps {
		v, err := cmds[i].Result()
		if err != nil || len(v) != 7 {
			b.lost(err) // a node of a cluster other than TIME's may be gone
			continue    // the next check
		}
		epoch, seq, dueText := v[0], v[1], v[2]
		// Parsed only when there is one: no due time (a tenant that never had an entry) would
		// make ParseInt allocate its error, for each such pump at every poll.
		var due int64
		dueOK := false
		if dueText != "" {
			d, err := strconv.ParseInt(dueText, 10, 64)
			due, dueOK = d, err == nil
		}
		var buf [20]byte
		p.mu.Lock()
		seen := epoch == p.epoch && (seq == string(strconv.AppendUint(buf[:0], p.head, 10)) || seq == "" && p.head == 0)
		// The same version at another time is another history: a failover issued it again.
		at := v[6]
		seen = seen && (at == "" || p.headAt == 0 || at == string(strconv.AppendInt(buf[:0], p.headAt, 10)))
		seen = seen && (dueOK || dueText == "") // junk: the pump's read reports it
		if seen {
			p.settled = losses[i] + 1
		}
		if dueOK && due <= serverNow && now.Err() == nil {
			// Due by the server's clock, which the pump's timer may not have seen (the clocks
			// drift, or the server's jumped): tick now.
			p.dueAt = time.Now()
			seen = false
		}
		p.mu.Unlock()
		if !seen {
			p.nudge()
		}
		if epoch != "" && now.Err() == nil && b.renews(v[3:], serverNow) {
			renew = append(renew, p)
		}
	}
	if len(renew) > 0 {
		cmds := make([][]any, len(renew))
		for i, p := range renew {
			cmds[i] = b.openCmd(p.keys, p.st.limits)
		}
		// A write of another backend between the HMGET and the renewal may have published
		// nothing (the registration had lapsed): the pump reads if the tenant moved.
		for i, cmd := range b.scripts.pipeline(ctx, openScript, cmds, newScriptCmd) {
			res, p := openResult(cmd.(*redis.Cmd)), renew[i]
			p.mu.Lock()
			moved := res.err == nil && (res.r.epoch != p.epoch || res.r.head != p.head)
			p.mu.Unlock()
			if moved {
				p.nudge()
			}
		}
	}
	return now.Err() == nil
}

// renews reports whether the backend's registration in a tenant whose META_WATCHER,
// META_WATCHED and META_SHARED fields are w ("" for a missing one) has less than half of
// watchFor left at now (ms), or none: then open.lua, which renews it, is to be called (see
// the package doc, "Notices"). Junk in the fields counts as time left, as open.lua counts it.
func (b *Backend) renews(w []string, now int64) bool {
	watcher := w[0]
	watched, shared := registration(w[1]), registration(w[2])
	half := now + b.watchFor().Milliseconds()/2
	switch {
	case watcher == "" || watched < now:
		return true // no watcher, or its time is up: this backend takes the place
	case watcher == b.watcherID:
		return watched < half
	default:
		return shared < half // another backend is the watcher: this one shares
	}
}

// registration returns the time (ms) of a registration field s: 0 when absent (""), never
// when junk.
func registration(s string) int64 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return never
	}
	return n
}

// errJunk is the error a pump reports to the observer for an entry of the events stream that
// is no event (junk added by another program), which it passes.
var errJunk = fmt.Errorf("redisstore: %w: an entry of the events stream is no event", backend.ErrCorrupt)

// junk makes the readers read from Redis for themselves if err, of a call on the tenant's keys,
// is junk there (backend.ErrCorrupt): they get the error at once, or skip the junk. Once per
// run of such errors (a write or a pump step that succeeds ends it): then the readers wait in
// the log, and get the pump's error after failAfter if its reads keep failing.
func (p *pump) junk(err error) {
	if errors.Is(err, backend.ErrCorrupt) && p.corrupt.CompareAndSwap(false, true) {
		p.resync()
	}
}

// feedFailure is a failure of a pump, which each of its subscriptions returns once.
type feedFailure struct{ err error }

// fail gives err to every subscription of the pump: each returns it once from Next, when it
// has no event to return (see subscription.feedErr). Every call is a new failure.
func (p *pump) fail(err error) {
	p.failure.Store(&feedFailure{err})
	p.log.Load().Wake()
}

// transient reports whether err may go away by retrying the same call: a connection error,
// or an error reply of a server that is busy, loading, failing over or moving slots. An error
// reply of another kind (a script error, WRONGTYPE), data that cannot be decoded and junk in
// the tenant's keys (backend.ErrCorrupt) are not.
func transient(err error) bool {
	if errors.Is(err, errMalformed) || errors.Is(err, backend.ErrCorrupt) {
		return false
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return true
	}
	for _, prefix := range transientReplies {
		if strings.HasPrefix(re.Error(), prefix) {
			return true
		}
	}
	return false
}

// transientReplies start the error replies that transient accepts.
var transientReplies = []string{"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN",
	"READONLY", "MOVED", "ASK", "NOSCRIPT", "NOREPLICAS", "OOM"}

// deliver appends events, the next ones of the pump's epoch, to the tenant's shared log, which
// wakes the subscriptions that wait.
func (p *pump) deliver(events []backend.Event) {
	if len(events) == 0 {
		return
	}
	p.mu.Lock()
	if last := &events[len(events)-1]; last.Version > p.head {
		p.head, p.headAt = last.Version, last.At
	}
	p.mu.Unlock()
	l := p.log.Load()
	appendEvents(l, events)
	l.Wake()
}

// logWindow is the age beyond which the pump drops events from the tenant's log (besides
// keeping at most WithReaderBuffer events): a reader that far behind reads from Redis, and a
// tenant with readers holds in memory only its recent events.
const logWindow = 10 * time.Second

// resync makes every subscription catch up from Redis: the tenant's state changed under it.
// The pump starts a new log at its epoch and head and closes the old one, whose readers then
// read from Redis.
func (p *pump) resync() {
	p.mu.Lock()
	old := p.log.Swap(backend.NewLog(p.epoch, p.head, p.b.buffer))
	p.mu.Unlock()
	old.Close()
}

// currentLog returns the tenant's log as the pump has it now.
func (p *pump) currentLog() *backend.Log { return p.log.Load() }

// nextDelay doubles a retry delay within [minRetry, maxRetry].
func nextDelay(d time.Duration) time.Duration {
	return min(max(2*d, minRetry), maxRetry)
}

// sleep waits for d or until ctx is done; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
