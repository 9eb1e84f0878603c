package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// maxRead is the most events one XREAD or catch-up read returns.
const maxRead = 100

// Retry delays after a failed Redis call of a pump or a catching-up reader, and the poll
// interval of a reader that waits for its pump to see what the reader already read.
const (
	minRetry  = 10 * time.Millisecond
	maxRetry  = time.Second
	stalePoll = 20 * time.Millisecond
)

// pump is the one blocking reader of one tenant's stream in a backend. It fans the events out
// to the tenant's subscriptions and runs the tick script, which expires due entries.
type pump struct {
	b      *Backend
	st     *store // its limits drive the tick script
	key    tenantKey
	keys   []string
	ctx    context.Context
	cancel context.CancelFunc
	// wakeKey is a stream of the pump's own, in the tenant's slot, that its XREAD also
	// watches: an entry there ends the block at once (see wake). wakeID is the last one seen.
	wakeKey string
	wakeID  string
	nudged  atomic.Bool // a nudge woke the pump since its last tick
	// from is the ID of the last entry of the events stream the pump read, which its XREAD
	// reads after: the pump passes junk entries (added by another program), however they are
	// numbered.
	from string

	// log is the tenant's shared log of the epoch the pump last saw: deliver appends to it,
	// the subscriptions read it. resync replaces it.
	log atomic.Pointer[backend.Log]
	// written is the highest version this backend's writes returned, maybe of an older
	// epoch; with the log's head, it tells events that fell out of the stream (see trimmed).
	written atomic.Uint64

	mu    sync.Mutex
	epoch string // the tenant's epoch as the pump last saw it
	head  uint64 // the last version the pump delivered (or started at)
	subs  map[*subscription]struct{}
}

// Subscribe implements [backend.Store]. It reads the tenant's epoch and head (creating the
// tenant's meta when absent), so the subscription's start is fixed when it returns, and joins
// the tenant's pump, starting it if this is the tenant's first subscription in the backend.
func (st *store) Subscribe(ctx context.Context, tenant string, req backend.SubscribeRequest) (backend.Subscription, error) {
	if err := st.b.check(); err != nil {
		return nil, err
	}
	keys := st.keys(tenant)
	r, err := runRead(ctx, st.b.client, keys, st.limits, backend.Cursor{}, 0)
	if err != nil {
		st.b.failed(tenantKey{st.id, tenant}, "read", err)
		return nil, fmt.Errorf("redisstore: subscribe: %w", err)
	}
	start := backend.Cursor{Epoch: r.epoch, Seq: r.head}
	if a := req.After; a != nil {
		if a.Epoch == r.epoch && a.Seq > r.head {
			return nil, fmt.Errorf("redisstore: subscribe after %v: %w: the tenant's last version is %d", a, backend.ErrInvalidCursor, r.head)
		}
		start = *a
	}
	sub := &subscription{
		prefix: req.Prefix,
		start:  start,
		limit:  st.b.buffer,
		pos:    start,
		done:   make(chan struct{}),
	}
	stale, err := st.attach(tenant, sub, keys, r)
	if err != nil {
		return nil, err
	}
	if stale {
		sub.p.nudge()
	}
	return sub, nil
}

// attach adds sub to its tenant's pump, starting the pump if needed. It reports whether the
// pump has yet to see the epoch of r, and should be nudged.
func (st *store) attach(tenant string, sub *subscription, keys []string, r readResult) (stale bool, err error) {
	b := st.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return false, backend.ErrClosed
	}
	k := tenantKey{st.id, tenant}
	p := b.pumps[k]
	if p == nil {
		ctx, cancel := context.WithCancel(context.Background())
		p = &pump{b: b, st: st, key: k, keys: keys, ctx: ctx, cancel: cancel,
			wakeKey: keys[keyState] + ":wake:" + backend.NewEpoch(time.Now()), wakeID: "0-0",
			from:  strconv.FormatUint(r.head, 10) + "-0",
			epoch: r.epoch, head: r.head, subs: make(map[*subscription]struct{})}
		p.log.Store(backend.NewLog(r.epoch, r.head, b.buffer))
		b.pumps[k] = p
		b.wg.Add(1)
		go p.run()
	}
	p.mu.Lock()
	sub.p = p
	stale = r.epoch != p.epoch // the tenant's state was made anew since the pump's last tick
	if l := p.log.Load(); !stale && sub.pos.Epoch == l.Epoch() && sub.pos.Seq+1 >= l.First() {
		sub.log = l // else it is lagging: it catches up from Redis first
	}
	p.subs[sub] = struct{}{}
	p.mu.Unlock()
	return stale, nil
}

// detach removes sub from its pump and stops the pump when sub was its last subscription.
func (b *Backend) detach(sub *subscription) {
	p := sub.p
	b.mu.Lock()
	p.mu.Lock()
	delete(p.subs, sub)
	last := len(p.subs) == 0
	p.mu.Unlock()
	if last && b.pumps[p.key] == p {
		delete(b.pumps, p.key)
	}
	b.mu.Unlock()
	if last {
		p.cancel()
		p.wake()
	}
}

// wakeTimeout bounds the call that wakes a stopping pump.
const wakeTimeout = time.Second

// wake ends the pump's blocking XREAD by adding to its wake stream, which expires soon after.
// If it fails, the pump ends when its XREAD times out, within the max block time.
func (p *pump) wake() {
	ctx, cancel := context.WithTimeout(context.Background(), wakeTimeout)
	defer cancel()
	_, _ = p.b.client.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.XAdd(ctx, &redis.XAddArgs{Stream: p.wakeKey, MaxLen: 1, Values: []any{"wake", "1"}})
		pl.PExpire(ctx, p.wakeKey, time.Minute)
		return nil
	})
}

// noteVersion records that a write of this backend made version v in the tenant k.
func (b *Backend) noteVersion(k tenantKey, v uint64) {
	b.mu.Lock()
	p := b.pumps[k]
	b.mu.Unlock()
	for p != nil {
		w := p.written.Load()
		if w >= v || p.written.CompareAndSwap(w, v) {
			return
		}
	}
}

// nudge makes the pump tick now, once until its next tick.
func (p *pump) nudge() {
	if p.nudged.CompareAndSwap(false, true) {
		p.wake()
	}
}

// stop cancels the pump, wakes it and ends its subscriptions.
func (p *pump) stop() {
	p.cancel()
	p.wake()
	p.mu.Lock()
	subs := p.subs
	p.subs = map[*subscription]struct{}{}
	p.mu.Unlock()
	for s := range subs {
		s.shut()
	}
}

func (p *pump) run() {
	defer p.b.wg.Done()
	var delay time.Duration
	corrupt := false // the last step failed on junk in the tenant's keys
	for {
		err := p.step()
		if p.ctx.Err() != nil {
			return
		}
		if err == nil {
			delay, corrupt = 0, false
			continue
		}
		if errors.Is(err, errJunk) || errors.Is(err, backend.ErrCorrupt) && !corrupt {
			// Junk in the tenant's keys: the readers read from Redis for themselves, where
			// they get the error, or skip the junk with an overflow. (Once for junk that
			// fails every tick: they have caught up, and no write passes it either.)
			p.resync()
		}
		corrupt = errors.Is(err, backend.ErrCorrupt)
		delay = nextDelay(delay)
		if !sleep(p.ctx, delay) {
			return
		}
	}
}

// step runs the tick script (reconcile due entries, notice a new epoch), then blocks in one
// XREAD until new events arrive or the next expiry is due, and delivers what it read.
func (p *pump) step() error {
	p.nudged.Store(false)
	t, err := runTick(p.ctx, p.b.client, p.keys, p.st.limits)
	if err != nil {
		p.b.failed(p.key, "tick", err)
		return err
	}
	if t.expired > 0 {
		p.b.obs.Expired(p.key.id, p.key.tenant, t.expired)
	}
	p.mu.Lock()
	if t.epoch != p.epoch || t.head < p.head {
		// The state was made anew (a new epoch), or went back (a failover to a replica
		// that lacked the last writes): every reader checks its position against Redis.
		p.epoch, p.head = t.epoch, t.head
		p.written.Store(0)
		p.from = strconv.FormatUint(t.head, 10) + "-0"
		p.mu.Unlock()
		p.resync()
		p.mu.Lock()
	}
	epoch, head := p.epoch, p.head
	p.mu.Unlock()

	block := p.b.maxBlock
	if t.due >= 0 {
		block = min(block, time.Duration(t.due-t.now)*time.Millisecond)
	}
	block = max(block, time.Millisecond) // BLOCK 0 would wait forever
	streams, err := p.b.client.XRead(p.ctx, &redis.XReadArgs{
		Streams: []string{p.keys[keyEvents], p.wakeKey, p.from, p.wakeID},
		Count:   maxRead,
		Block:   block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil // timed out: the next tick reconciles
	}
	if err != nil {
		p.b.failed(p.key, "xread", err)
		return scriptError(err)
	}
	var events []backend.Event
	var junk error
	known := max(head, t.head) // no event of the epoch is beyond, but those read after it
	for _, st := range streams {
		if st.Stream == p.wakeKey {
			p.wakeID = st.Messages[len(st.Messages)-1].ID
			continue
		}
		for _, m := range st.Messages {
			ev, err := parseEvent(m.ID, m.Values)
			if err == nil && ev.Epoch == epoch {
				events = append(events, ev)
				known = max(known, ev.Version)
				p.from = m.ID
				continue
			}
			if err != nil {
				p.b.failed(p.key, "xread", err) // junk: the operator hears of it
			}
			// Junk, or an event of a new epoch (the state was lost and made anew, which the
			// next tick sees): not delivered. The readers read from Redis, and skip it.
			junk = errJunk
			if idSeq(m.ID) > known {
				break // maybe the next tick's epoch: read it again after the tick
			}
			p.from = m.ID
		}
	}
	p.deliver(events)
	return junk
}

// errJunk is the error of a pump step that read a stream entry that is not an event of the
// pump's epoch.
var errJunk = errors.New("redisstore: an entry of the events stream is not an event of the tenant's epoch")

// deliver appends events, the next ones of the pump's epoch, to the tenant's shared log, which
// wakes the subscriptions that wait.
func (p *pump) deliver(events []backend.Event) {
	if len(events) == 0 {
		return
	}
	p.mu.Lock()
	p.head = max(p.head, events[len(events)-1].Version)
	p.mu.Unlock()
	l := p.log.Load()
	l.Append(events...)
	l.DropBefore(events[len(events)-1].At - logWindow.Milliseconds())
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
