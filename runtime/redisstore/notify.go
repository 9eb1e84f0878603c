package redisstore

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// hub is the pub/sub connection of a Backend, outside the command pool: to the server
// (standalone, Sentinel) or to one node of a cluster, where PUBLISH reaches every node. It
// subscribes the notice channels of the tenants with pumps, and hands each notice to its
// pump. go-redis redials a lost connection and subscribes the channels again; each
// confirmation has the pump's tenant checked, as notices may have been lost meanwhile.
//
// Sharded pub/sub (SPUBLISH, SSUBSCRIBE to each master) would keep a cluster's notices in
// their shard, but go-redis subscribes all the shard channels of a connection again in one
// SSUBSCRIBE when it redials, which a cluster refuses (CROSSSLOT) for channels of different
// slots.
type hub struct {
	b *Backend

	mu     sync.Mutex // serializes subscribing and unsubscribing; guards the fields below
	ps     *redis.PubSub
	on     map[string]bool // the channels subscribed
	closed bool

	// losses counts the errors of the connection (lost, refused a subscription, silent when
	// pinged, deaf to its probe): notices may have been lost at each, so a pump is live only if
	// it saw the tenant's head in Redis since the last (see attachLive).
	losses atomic.Uint64

	// probe is the hub's own channel, always subscribed, named as a tenant's (so that an ACL
	// that lets the tenants' channels through lets it through); probed is the last number
	// received on it (see Backend.probeHub).
	probe  string
	probed atomic.Uint64

	smu      sync.Mutex          // guards the fields below
	changed  map[string]struct{} // channels whose watchers changed since they were written
	written  chan struct{}       // closed when the commands with the channels of changed are written
	flushing bool                // a call of sync writes them
	// spare is the map of the last channels written, emptied, for the next changes: the maps
	// take turns, rather than a new one for each write (a tenth of what opening a reader of a
	// new tenant allocated). Only a map of a write of at most maxOpenBatch channels is kept: a
	// map keeps the size of the most it held, and emptying one costs its size.
	spare map[string]struct{}
}

// channel returns the notice channel of the tenant whose keys are keys: named as its events
// stream, so that it has the tenant's hash tag (the shard channel is in the tenant's slot).
func channel(keys []string) string { return keys[keyEvents] }

// listen subscribes the notice channel of p, a new pump, on the backend's hub, made if
// needed. A failed subscribe is retried by go-redis when it redials.
func (b *Backend) listen(ctx context.Context, p *pump) error {
	b.hmu.Lock()
	h := b.hub
	if h == nil && !b.closed.Load() {
		h = &hub{b: b, on: make(map[string]bool), probe: b.prefix + ":{#probe-" + b.watcherID + "}:events"}
		h.ps = h.dial(ctx)
		b.hub = h
		b.wg.Add(1)
		go h.run()
	}
	b.hmu.Unlock()
	if h == nil {
		return backend.ErrClosed
	}
	p.hub.Store(h)
	h.sync(ctx, p.channel, true)
	return nil
}

// dial returns a new PubSub subscribed to h.probe and the channels of h.on. h.mu is held, or h
// is new. In a cluster, go-redis connects it to the master of the first channel's slot (as the
// client's slot map has it), the probe's: without a channel it took any node it knew, a
// replica or a node gone from the cluster too.
func (h *hub) dial(ctx context.Context) *redis.PubSub {
	chans := make([]string, 1, len(h.on)+1)
	chans[0] = h.probe
	for ch := range h.on {
		chans = append(chans, ch)
	}
	return h.b.client.Subscribe(ctx, chans...)
}

// redial replaces the PubSub of h with a new one on a new connection: after an error reply
// (a subscription the server refused) or a connection that stays silent when pinged.
func (h *hub) redial() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	old := h.ps
	h.ps = h.dial(ctx)
	_ = old.Close()
}

func (h *hub) pubSub() (*redis.PubSub, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ps, h.closed
}

// sync subscribes ch if a pump of the Backend watches it, and unsubscribes it otherwise. Called
// after every change of the watchers of ch, it leaves the subscription right whatever the order
// of the calls. The changes go in groups: a call with no write of the hub's in progress writes
// the changes that wait (after letting the goroutines that are runnable, such as the other
// opens of a batch, hand theirs in), one SUBSCRIBE and one UNSUBSCRIBE for all of them, and
// again until none waits; a call during a write leaves its change to that caller. With wait,
// sync returns once the command with ch is written (so that a write that follows Subscribe
// finds the channel subscribed, mostly), or ctx ends; a subscribe that is confirmed has its
// tenant checked all the same (see run): notices published before it took effect are made up
// for. Without wait (a pump stopped), a goroutine of its own writes the changes, and sync
// returns at once: closing a reader never waits for the hub's connection, and the closes that
// follow one another (an application's shutdown, say) join that goroutine's writes, where each
// wrote an UNSUBSCRIBE of its own (BenchmarkOpens measures the closes; docs/PERFORMANCE.md,
// "Closing readers one after the other").
func (h *hub) sync(ctx context.Context, ch string, wait bool) {
	h.smu.Lock()
	if h.changed == nil {
		h.changed = make(map[string]struct{})
		h.written = make(chan struct{})
	}
	h.changed[ch] = struct{}{}
	if h.flushing {
		written := h.written
		h.smu.Unlock()
		if wait {
			select {
			case <-written:
			case <-ctx.Done(): // the command is written all the same
			}
		}
		return
	}
	h.flushing = true
	h.smu.Unlock()
	if !wait {
		h.b.spawn(h.flush)
		return
	}
	h.flush()
}

// flush writes the changes that wait until none does, then ends the flushing that its caller
// began (see sync).
func (h *hub) flush() {
	runtime.Gosched()
	h.smu.Lock()
	for len(h.changed) > 0 {
		chans, written := h.changed, h.written
		h.changed, h.written, h.spare = h.spare, make(chan struct{}), nil
		if h.changed == nil {
			h.changed = make(map[string]struct{})
		}
		h.smu.Unlock()
		h.apply(context.Background(), chans)
		close(written)
		if len(chans) > maxOpenBatch {
			chans = nil // not kept (see spare)
		}
		clear(chans)
		h.smu.Lock()
		h.spare = chans
	}
	h.flushing = false
	h.smu.Unlock()
}

// apply subscribes those of chans that a pump of the Backend watches and that are not
// subscribed, and unsubscribes those that none watches and that are: one command each.
func (h *hub) apply(ctx context.Context, chans map[string]struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var sub, unsub []string
	for ch := range chans {
		switch want := h.b.watcher(ch) != nil; {
		case want && !h.on[ch]:
			sub = append(sub, ch)
			h.on[ch] = true
		case !want && h.on[ch]:
			unsub = append(unsub, ch)
			delete(h.on, ch)
		}
	}
	// The PubSub records the change even when the command fails, and redials with it.
	if len(sub) > 0 {
		_ = h.ps.Subscribe(ctx, sub...)
	}
	if len(unsub) > 0 {
		_ = h.ps.Unsubscribe(ctx, unsub...)
	}
}

// run hands the notices to the pumps until the hub is closed. A confirmed subscription, the
// first or one after go-redis or redial dialled again, has the pump's tenant checked (see
// verify), and the pump read it if it changed; a notice that continues the pump's log is
// appended to it here (see pump.notify), another makes the pump read if the notice is news to
// it. A connection silent for a second (or the poll interval, if shorter) is pinged; if it
// stays silent for another, or a subscription fails, it is replaced.
func (h *hub) run() {
	defer h.b.wg.Done()
	var delay time.Duration
	pinged := false
	for {
		ps, closed := h.pubSub()
		if closed {
			return
		}
		m, err := ps.ReceiveTimeout(context.Background(), h.b.pingEvery())
		if err != nil {
			var ne net.Error
			var re redis.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout() && !pinged:
				ctx, cancel := context.WithTimeout(context.Background(), h.b.pingEvery())
				_ = ps.Ping(ctx)
				cancel()
				pinged = true
				continue
			}
			h.losses.Add(1)
			if !h.b.closed.Load() {
				// The connection serves every store and tenant of the backend.
				h.b.obs.Error("", "", "pubsub", err)
				h.b.lost(err) // the node it redials may be gone from the cluster
			}
			switch {
			case errors.As(err, &re) || errors.As(err, &ne) && ne.Timeout():
				delay = nextDelay(delay)
				if !h.sleep(delay) {
					return
				}
				h.redial()
			default: // go-redis dials again on the next receive
				delay = nextDelay(delay)
				if !h.sleep(delay) {
					return
				}
			}
			pinged = false
			continue
		}
		delay, pinged = 0, false
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				if p := h.b.watcher(m.Channel); p != nil {
					h.b.verify(p)
				}
			}
		case *redis.Message:
			if m.Channel == h.probe {
				if n, err := strconv.ParseUint(m.Payload, 10, 64); err == nil {
					h.probed.Store(n)
				}
			} else if p := h.b.watcher(m.Channel); p != nil {
				p.notify(m.Payload)
			}
		}
	}
}

// errDeaf is the error the hub reports when its connection did not get its probe.
var errDeaf = errors.New("redisstore: the pub/sub connection did not get what was published on its probe channel within the probe interval: replaced")

// probeState is what the checks of the hub's connection keep (see probeHub).
type probeState struct {
	every  time.Duration // every poll, but not more often than every probeFloor
	at     time.Time     // when the last probe was published
	n      uint64        // the number of the last probe
	sent   bool          // it was published: the hub has to have received it by the next check
	losses uint64        // the hub's losses when it was published
}

// probeHub checks that the hub's connection gets what is published, every probe.every (at the
// poll's ticks): it publishes a number on the hub's probe channel, through the command pool,
// and at the next check, a connection that has not received it, and had no error meanwhile,
// is deaf, and is replaced as a lost one is (and counted as a loss, so that the pumps check
// their tenants). A connection can be up and deaf: its node has left the cluster (CLUSTER
// RESET, a scale-in's del-node) and no longer gets the cluster's messages, or the cluster's
// bus is cut, while it still answers the pings. A probe that the server refuses (an ACL that
// forbids PUBLISH on it) or that does not reach it is not judged. It runs on the poll's
// goroutine, which alone uses b.probe.
func (b *Backend) probeHub(now time.Time) {
	b.hmu.Lock()
	h := b.hub
	b.hmu.Unlock()
	p := &b.probe
	if h == nil || now.Sub(p.at) < p.every-b.pollEvery/2 { // the ticks' jitter aside
		return
	}
	if p.sent && h.probed.Load() < p.n && h.losses.Load() == p.losses {
		h.losses.Add(1)
		b.obs.Error("", "", "pubsub", errDeaf)
		h.redial()
	}
	p.at, p.n, p.losses = now, p.n+1, h.losses.Load()
	ctx, cancel := context.WithTimeout(context.Background(), b.pollEvery)
	defer cancel()
	p.sent = b.client.Publish(ctx, h.probe, strconv.FormatUint(p.n, 10)).Err() == nil
}

// pingEvery is how long a pub/sub connection may be silent before it is pinged.
func (b *Backend) pingEvery() time.Duration { return min(b.pollEvery, time.Second) }

// sleep waits for d; it reports false if the backend closed meanwhile.
func (h *hub) sleep(d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-h.b.done:
		return false
	}
}

// watcher returns the pump of the tenant whose notice channel is ch, or nil.
func (b *Backend) watcher(ch string) *pump {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.watch[ch]
}

// closeHub closes the pub/sub connection; the hub's run goroutine ends. Close has set
// b.closed, so no hub is made after.
func (b *Backend) closeHub() {
	b.hmu.Lock()
	h := b.hub
	b.hmu.Unlock()
	if h != nil {
		h.mu.Lock()
		h.closed = true
		_ = h.ps.Close()
		h.mu.Unlock()
	}
}
