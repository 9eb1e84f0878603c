package redisstore

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// hub is one pub/sub connection of a Backend, on its own connection outside the command pool:
// the one to the server (standalone, Sentinel), or the one to a master of a cluster. It
// subscribes the notice channels of the tenants with pumps on that server, and hands each
// notice to its pump. go-redis redials a lost connection and subscribes the channels again;
// each confirmation makes the pump read its tenant, as notices may have been lost meanwhile.
type hub struct {
	b       *Backend
	sharded bool // SSUBSCRIBE (cluster) rather than SUBSCRIBE

	mu     sync.Mutex // serializes subscribing and unsubscribing; guards the fields below
	ps     *redis.PubSub
	on     map[string]bool // the channels subscribed
	closed bool
}

// channel returns the notice channel of the tenant whose keys are keys: named as its events
// stream, so that it has the tenant's hash tag (the shard channel is in the tenant's slot).
func channel(keys []string) string { return keys[keyEvents] }

// listen subscribes the notice channel of p, a new pump, on the hub of its server, made if
// needed. A failed subscribe is retried by go-redis when it redials.
func (b *Backend) listen(ctx context.Context, p *pump) error {
	h, err := b.hubFor(ctx, p.channel)
	if err != nil {
		return err
	}
	p.hub.Store(h)
	h.sync(ctx, p.channel)
	return nil
}

// hubFor returns the hub of the server that ch is on, making it if needed.
func (b *Backend) hubFor(ctx context.Context, ch string) (*hub, error) {
	addr := ""
	cc, cluster := b.client.(*redis.ClusterClient)
	if cluster {
		master, err := cc.MasterForKey(ctx, ch)
		if err != nil {
			return nil, err
		}
		addr = master.Options().Addr
	}
	b.hmu.Lock()
	defer b.hmu.Unlock()
	if b.hubs == nil {
		return nil, backend.ErrClosed
	}
	if h := b.hubs[addr]; h != nil {
		return h, nil
	}
	h := &hub{b: b, sharded: cluster, on: make(map[string]bool)}
	if cluster {
		h.on[ch] = true // the cluster PubSub's first channel picks its master
	}
	h.ps = h.dial(ctx)
	b.hubs[addr] = h
	b.wg.Add(1)
	go h.run()
	return h, nil
}

// dial returns a new PubSub subscribed to the channels of h.on. A cluster PubSub dials the
// master of its first channel's slot (when it dials again too). h.mu is held, or h is new.
func (h *hub) dial(ctx context.Context) *redis.PubSub {
	chans := make([]string, 0, len(h.on))
	for ch := range h.on {
		chans = append(chans, ch)
	}
	if h.sharded {
		return h.b.client.(*redis.ClusterClient).SSubscribe(ctx, chans...)
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

// sync subscribes ch if a pump of the Backend watches it, and unsubscribes it otherwise.
// Called after every change of the watchers of ch, it leaves the subscription right whatever
// the order of the calls.
func (h *hub) sync(ctx context.Context, ch string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	want := h.b.watcher(ch) != nil
	if want == h.on[ch] {
		return
	}
	// The PubSub records the change even when the command fails, and redials with it.
	switch {
	case want && h.sharded:
		_ = h.ps.SSubscribe(ctx, ch)
	case want:
		_ = h.ps.Subscribe(ctx, ch)
	case h.sharded:
		_ = h.ps.SUnsubscribe(ctx, ch)
	default:
		_ = h.ps.Unsubscribe(ctx, ch)
	}
	if want {
		h.on[ch] = true
	} else {
		delete(h.on, ch)
	}
}

// run hands the notices to the pumps until the hub is closed. A confirmed subscription, the
// first or one after go-redis or redial dialled again, has the pump's tenant checked (see
// verify), and the pump read it if it changed; a
// notice makes it read if the notice is news to it. A connection silent for a second (or
// the max block time, if shorter) is pinged; if it stays silent for another, or a subscription fails, it is replaced.
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
			if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
				if p := h.b.watcher(m.Channel); p != nil {
					h.b.verify(p)
				}
			}
		case *redis.Message:
			if p := h.b.watcher(m.Channel); p != nil {
				p.notify(m.Payload)
			}
		}
	}
}

// pingEvery is how long a pub/sub connection may be silent before it is pinged.
func (b *Backend) pingEvery() time.Duration { return min(b.maxBlock, time.Second) }

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

// closeHubs closes the pub/sub connections; their run goroutines end.
func (b *Backend) closeHubs() {
	b.hmu.Lock()
	hubs := b.hubs
	b.hubs = nil
	b.hmu.Unlock()
	for _, h := range hubs {
		h.mu.Lock()
		h.closed = true
		_ = h.ps.Close()
		h.mu.Unlock()
	}
}
