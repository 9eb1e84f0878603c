package redistest

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections from a loopback port to a server, and loses what a test tells
// it to: the reply to a request, as a network that fails after the server ran a command, or
// every byte from now on, as a network that stops without closing anything.
type Proxy struct {
	ln     net.Listener
	target string
	drop   atomic.Pointer[[]byte] // the request whose reply to drop, if set
	frozen atomic.Bool            // forward nothing, close nothing
	thaw   chan struct{}

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// NewProxy returns a proxy to the server at target, closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, thaw: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address, for a client.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// DropReply makes the proxy close the connection of the next request that contains match (a
// key, say) when its reply comes, before forwarding it: the command ran, and its client sees
// the connection lost instead of its reply. The commands of other connections, such as a
// client's background work, go on.
func (p *Proxy) DropReply(match string) {
	b := []byte(match)
	p.drop.Store(&b)
}

// Freeze makes the proxy hold every byte, both ways, on every connection, until Thaw; the
// connections stay open.
func (p *Proxy) Freeze() { p.frozen.Store(true) }

// Thaw ends a Freeze: what was held goes on.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen.Swap(false) {
		close(p.thaw)
		p.thaw = make(chan struct{})
	}
}

// Close closes the proxy and its connections, and waits for its goroutines.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Thaw()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		dropping := new(atomic.Bool) // this connection's next reply is to be dropped
		p.wg.Go(func() { p.pipe(s, c, dropping, false) })
		p.wg.Go(func() { p.pipe(c, s, dropping, true) })
	}
}

// pipe copies from src to dst until either fails, then closes both. From the client, it marks
// the connection dropping at the request DropReply asked for; from the server, it ends at the
// next reply of a connection so marked.
func (p *Proxy) pipe(dst, src net.Conn, dropping *atomic.Bool, fromServer bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.hold()
			if fromServer && dropping.Load() {
				return
			}
			if m := p.drop.Load(); !fromServer && m != nil && bytes.Contains(buf[:n], *m) && p.drop.CompareAndSwap(m, nil) {
				dropping.Store(true)
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold waits while the proxy is frozen.
func (p *Proxy) hold() {
	for p.frozen.Load() {
		p.mu.Lock()
		thaw := p.thaw
		p.mu.Unlock()
		if p.frozen.Load() {
			<-thaw
		}
	}
}
