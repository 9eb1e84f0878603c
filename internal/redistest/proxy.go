package redistest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections from a loopback port to a server, and loses what a test tells
// it to: the next reply, as a network that fails after the server ran a command, or every byte
// from now on, as a network that stops without closing anything.
type Proxy struct {
	ln     net.Listener
	target string
	drop   atomic.Bool // close the connection instead of forwarding the next reply
	frozen atomic.Bool // forward nothing, close nothing
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

// DropNextReply makes the proxy close the connection that next carries bytes from the server,
// before forwarding them: the command they answer ran, and its client sees the connection
// lost instead of its reply.
func (p *Proxy) DropNextReply() { p.drop.Store(true) }

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
		p.wg.Go(func() { p.pipe(s, c, false) })
		p.wg.Go(func() { p.pipe(c, s, true) })
	}
}

// pipe copies from src to dst until either fails, then closes both.
func (p *Proxy) pipe(dst, src net.Conn, fromServer bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.hold()
			if fromServer && p.drop.CompareAndSwap(true, false) {
				return
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
