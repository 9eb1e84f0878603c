package main

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits is what one client may do: the server counts by remote IP address, an IPv6 address
// by its /64 prefix (a host is commonly given a whole /64, and could otherwise count as
// 2^64 clients). Behind a reverse proxy every client has the proxy's address, so raise them
// there (or limit at the proxy).
type Limits struct {
	Conns       int        // connections open at once
	Streams     int        // event streams open at once
	StreamRate  rate.Limit // event streams opened per second, over time
	StreamBurst int        // event streams opened in a burst
	JoinRate    rate.Limit // joins per second, over time
	JoinBurst   int        // joins in a burst
	WriteRate   rate.Limit // heartbeats, status changes and leaves per second, over time
	WriteBurst  int        // heartbeats, status changes and leaves in a burst
}

// DefaultLimits are the limits of a server started without flags: enough for a person with a
// few tabs, too little to fill a room. A browser opens at most six HTTP/1.1 connections to a
// host, so 32 connections are a few browsers behind one address; each open connection costs the
// server a descriptor, a goroutine and buffers, idle or not. A stream opened makes the server
// hold its room's state for the store's event retention (5 minutes), even when the stream
// closes at once: at one stream a second, one address makes it hold at most some 300 rooms.
// Heartbeats keep members whose streams are down alive: a page sends one every third of the
// TTL, but each extends its member a whole TTL, so at four writes a second one address keeps at
// most some 40 members of the default TTL (10 s) alive that way, besides the 8 its streams keep
// and the some 10 it joined (one a second) within the last TTL.
var DefaultLimits = Limits{Conns: 32, Streams: 8, StreamRate: 1, StreamBurst: 16, JoinRate: 1, JoinBurst: 5, WriteRate: 4, WriteBurst: 20}

// Unlimited are limits that refuse nothing, for load tests from one address.
var Unlimited = Limits{Conns: 1 << 30, Streams: 1 << 30, StreamRate: rate.Inf, StreamBurst: 1 << 30, JoinRate: rate.Inf, JoinBurst: 1 << 30, WriteRate: rate.Inf, WriteBurst: 1 << 30}

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
	joins, opens, writes *rate.Limiter
	streams              int
	seen                 time.Time
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
		for id, c := range g.clients {
			if c.streams == 0 && now.Sub(c.seen) > forgetAfter {
				delete(g.clients, id)
			}
		}
	}
	id := clientID(r)
	c := g.clients[id]
	if c == nil {
		l := g.limits
		c = &client{
			joins:  rate.NewLimiter(l.JoinRate, l.JoinBurst),
			opens:  rate.NewLimiter(l.StreamRate, l.StreamBurst),
			writes: rate.NewLimiter(l.WriteRate, l.WriteBurst),
		}
		g.clients[id] = c
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

// allowWrite reports whether the request's client may send a heartbeat, a status change or a
// leave now.
func (g *guard) allowWrite(r *http.Request) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.clientOf(r).writes.AllowN(g.now(), 1)
}

// openStream counts an event stream of the request's client and returns the function that
// ends it, or the reason it may not open one now: rejectStreams when the client has all the
// streams it may have, rejectStreamRate when it opened too many of late.
func (g *guard) openStream(r *http.Request) (done func(), reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.clientOf(r)
	if c.streams >= g.limits.Streams {
		return nil, rejectStreams
	}
	if !c.opens.AllowN(g.now(), 1) {
		return nil, rejectStreamRate
	}
	c.streams++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		c.streams--
		c.seen = g.now()
	}, ""
}

// clientID returns what the request's client is counted by: its peer's IPv4 address, or the
// /64 prefix of its IPv6 address.
func clientID(r *http.Request) string { return addrClient(r.RemoteAddr) }

// addrClient returns what the client at addr, a peer's address and port, is counted by.
func addrClient(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return addr // not an address and port: whatever it is, counted alone
	}
	a := ap.Addr().Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64) // cannot fail on an IPv6 address
	return p.String()
}

// limitConns returns a listener that accepts from ln at most max connections open at once
// per client (as clientID counts them), and closes the others as soon as they are accepted,
// calling refused for each. Closing an accepted connection, not leaving it in the kernel's
// backlog, keeps a client over its limit from filling the backlog for everyone else.
func limitConns(ln net.Listener, max int, refused func()) net.Listener {
	return &connLimiter{Listener: ln, max: max, refused: refused, open: map[string]int{}}
}

// connLimiter is the listener of limitConns.
type connLimiter struct {
	net.Listener
	max     int
	refused func()

	mu   sync.Mutex
	open map[string]int // connections open per client; clients with none are deleted
}

// Accept returns the next connection whose client is within its limit.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		id := addrClient(c.RemoteAddr().String())
		l.mu.Lock()
		ok := l.open[id] < l.max
		if ok {
			l.open[id]++
		}
		l.mu.Unlock()
		if ok {
			return &limitedConn{Conn: c, l: l, id: id}, nil
		}
		l.refused() // counted before the client can see the close
		c.Close()
	}
}

// limitedConn is a connection that connLimiter counts until it is closed.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	id   string
	once sync.Once
}

// Close closes the connection, and counts it closed the first time.
func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		defer c.l.mu.Unlock()
		if c.l.open[c.id]--; c.l.open[c.id] == 0 {
			delete(c.l.open, c.id)
		}
	})
	return c.Conn.Close()
}

// hostFilter returns the check of the Host names that a server listening at addr answers
// for: those of list, comma-separated names or IP addresses without a port ("*": any), or,
// when list is empty, any unless addr is a loopback address, and then loopback names only:
// localhost, names under .localhost and loopback IP addresses. A nil check answers any.
//
// A server on loopback is one that other sites must not reach through a browser on the same
// machine. A site whose name its owner resolves to 127.0.0.1 (DNS rebinding) is its own origin
// to the browser, so the check against cross-origin writes lets its pages through; only the
// Host header, its name, tells it apart. Behind a reverse proxy on the same machine that
// passes the Host header on, list the names the proxy serves.
func hostFilter(list string, addr net.Addr) (func(host string) bool, error) {
	if list == "" {
		if a, ok := addr.(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			return nil, nil
		}
		return func(host string) bool { return isLoopbackHost(hostName(host)) }, nil
	}
	names := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "*" {
			return nil, nil
		}
		name := hostName(n)
		if _, err := netip.ParseAddr(name); err != nil && (name == "" || strings.ContainsAny(name, ":/[]")) {
			return nil, fmt.Errorf("-hosts: %q is not a host name or an IP address without a port", n)
		}
		names[name] = true
	}
	return func(host string) bool { return names[hostName(host)] }, nil
}

// hostName returns the name of a Host header, or of a -hosts entry: without its port, the
// brackets of an IPv6 address or a final dot, in lower case.
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// isLoopbackHost reports whether name (as hostName returns it) names this machine's loopback
// interface.
func isLoopbackHost(name string) bool {
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(name)
	return err == nil && a.Unmap().IsLoopback()
}
