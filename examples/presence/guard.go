package main

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits is what one client may do: the server counts by remote IP address. Behind a reverse
// proxy every client has the proxy's address, so raise them there (or limit at the proxy).
type Limits struct {
	Streams   int        // event streams open at once
	JoinRate  rate.Limit // joins per second, over time
	JoinBurst int        // joins in a burst
}

// DefaultLimits are the limits of a server started without flags: enough for a person with a
// few tabs, too little to fill a room.
var DefaultLimits = Limits{Streams: 8, JoinRate: 1, JoinBurst: 5}

// guard keeps the per-client state that enforces Limits. Clients that hold no stream and have
// not joined for a while are forgotten, so the state stays as small as the set of active
// clients.
type guard struct {
	limits Limits
	now    func() time.Time

	mu      sync.Mutex
	clients map[string]*client
	sweep   time.Time // when idle clients were last forgotten
}

type client struct {
	joins   *rate.Limiter
	streams int
	seen    time.Time
}

// forgetAfter is how long an idle client's state is kept: longer than a full join burst takes
// to refill at any rate the flags allow in practice.
const forgetAfter = 10 * time.Minute

func newGuard(l Limits) *guard {
	return &guard{limits: l, now: time.Now, clients: map[string]*client{}}
}

// clientOf returns the state of the request's client; g.mu is held.
func (g *guard) clientOf(r *http.Request) *client {
	now := g.now()
	if now.Sub(g.sweep) > forgetAfter {
		g.sweep = now
		for ip, c := range g.clients {
			if c.streams == 0 && now.Sub(c.seen) > forgetAfter {
				delete(g.clients, ip)
			}
		}
	}
	ip := remoteIP(r)
	c := g.clients[ip]
	if c == nil {
		c = &client{joins: rate.NewLimiter(g.limits.JoinRate, g.limits.JoinBurst)}
		g.clients[ip] = c
	}
	c.seen = now
	return c
}

// allowJoin reports whether the request's client may join a room now.
func (g *guard) allowJoin(r *http.Request) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.clientOf(r).joins.AllowN(g.now(), 1)
}

// openStream counts an event stream of the request's client and returns the function that
// ends it, or false when the client has all the streams it may have.
func (g *guard) openStream(r *http.Request) (done func(), ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.clientOf(r)
	if c.streams >= g.limits.Streams {
		return nil, false
	}
	c.streams++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		c.streams--
		c.seen = g.now()
	}, true
}

// remoteIP returns the IP address of the request's peer.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
