package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
)

// limitsWith returns Unlimited with the changes of set: the limits a test checks, and no
// other in its way.
func limitsWith(set func(*Limits)) Limits {
	l := Unlimited
	set(&l)
	return l
}

// fakeClock is the guard's clock in a test: it stands still until the test moves it, and the
// server's goroutines may read it while the test does (a stream's end reads it when the
// server sees the client go, at a time of its own).
type fakeClock struct{ ns atomic.Int64 }

// stopClock sets the guard of a to a fakeClock at 2030-01-01 and returns it.
func stopClock(a *app) *fakeClock {
	c := new(fakeClock)
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	a.srv.guard.now = c.now
	return c
}

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// TestRoomSize checks that a room holds at most MaxEntries members: the next join is told the
// room is full.
func TestRoomSize(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL, limits: ephemeral.Limits{MaxEntries: 3}})
	for _, name := range []string{"Ada", "Grace", "Carol"} {
		a.join(t, "r", name)
	}
	if code, body := a.post(t, "/rooms/r/join", url.Values{"name": {"Dave"}}); code != http.StatusServiceUnavailable || !strings.Contains(body, "full") {
		t.Errorf("fourth join: %d %s, want 503 the room is full", code, body)
	}
	a.wantRejected(t, rejectRoomFull, 1)
	a.join(t, "s", "Dave") // another room has room
}

// TestJoinRate checks that one client's joins are limited to its burst, then to the rate, and
// that another client is not held back by it.
func TestJoinRate(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL, guard: limitsWith(func(l *Limits) { l.JoinRate, l.JoinBurst = 1, 3 })})
	clock := stopClock(a)
	for i := range 3 {
		a.join(t, "r", "Ada"+strings.Repeat("!", i))
	}
	code, _ := a.post(t, "/rooms/r/join", url.Values{"name": {"Mallory"}})
	if code != http.StatusTooManyRequests {
		t.Fatalf("fourth join in a burst of three: %d, want 429", code)
	}
	if n := memberCount(t, a, "r"); n != 3 {
		t.Errorf("the room has %d members after a refused join, want 3", n)
	}
	clock.add(time.Second) // one more join a second
	a.join(t, "r", "Grace")
	if code, _ := a.post(t, "/rooms/r/join", url.Values{"name": {"Mallory"}}); code != http.StatusTooManyRequests {
		t.Errorf("second join within the second: %d, want 429", code)
	}
}

// TestJoinInvalidName checks that a join refused for its name does not count against the
// client's joins.
func TestJoinInvalidName(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL, guard: limitsWith(func(l *Limits) { l.JoinRate, l.JoinBurst = 1, 1 })})
	a.srv.guard.now = func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }
	for range 3 {
		if code, _ := a.post(t, "/rooms/r/join", url.Values{"name": {" "}}); code != http.StatusBadRequest {
			t.Fatalf("join with a blank name: %d, want 400", code)
		}
	}
	a.join(t, "r", "Ada") // the burst of one is still there
	a.wantRejected(t, rejectJoinRate, 0)
}

// TestStreamRate checks that one client opens streams at most at its rate, after its burst,
// even when each closes at once (each makes the server hold its room's state), and that
// another client is not held back by it.
func TestStreamRate(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL, guard: limitsWith(func(l *Limits) { l.StreamRate, l.StreamBurst = 1, 3 })})
	clock := stopClock(a)
	get := func(room string) *http.Response {
		t.Helper()
		resp, err := http.Get(a.url + "/rooms/" + room + "/events")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 3 {
		if resp := get(fmt.Sprint("r", i)); resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of a burst of three: %d, want 200", i+1, resp.StatusCode)
		}
	}
	resp := get("r3")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth stream in a burst of three: %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	a.wantRejected(t, rejectStreamRate, 1)
	clock.add(time.Second) // one more a second
	if resp := get("r4"); resp.StatusCode != http.StatusOK {
		t.Errorf("a stream a second later: %d, want 200", resp.StatusCode)
	}
	if resp := get("r5"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a second stream within the second: %d, want 429", resp.StatusCode)
	}
}

// TestWriteRate checks that one client's heartbeats, status changes and leaves, together, are
// limited to its burst and then to the rate.
func TestWriteRate(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL, guard: limitsWith(func(l *Limits) { l.WriteRate, l.WriteBurst = 1, 3 })})
	clock := stopClock(a)
	ada := a.join(t, "r", "Ada")
	for i, path := range []string{"heartbeat", "status", "heartbeat"} {
		want := http.StatusNoContent
		if path == "heartbeat" {
			want = http.StatusOK // with a fresh renewal token
		}
		if code, body := a.post(t, "/rooms/r/"+path, ada.form("status", "away")); code != want {
			t.Fatalf("write %d (%s) of a burst of three: %d %s, want %d", i+1, path, code, body, want)
		}
	}
	for _, path := range []string{"status", "heartbeat", "leave"} {
		if code, _ := a.post(t, "/rooms/r/"+path, ada.form("status", "active")); code != http.StatusTooManyRequests {
			t.Fatalf("%s after a burst of three: %d, want 429", path, code)
		}
	}
	a.wantRejected(t, rejectWriteRate, 3)
	if e, ok, err := a.store.Get(context.Background(), ada.ID, ephemeral.WithTenant("r")); err != nil || !ok || e.Value.Status != StatusAway {
		t.Fatalf("Ada after a refused status change and leave: %+v, %v, %v; want her, away", e.Value, ok, err)
	}
	clock.add(time.Second)
	if code, _ := a.post(t, "/rooms/r/status", ada.form("status", "active")); code != http.StatusNoContent {
		t.Errorf("status a second later: %d, want 204", code)
	}
	if code, _ := a.post(t, "/rooms/r/leave", ada.form()); code != http.StatusTooManyRequests {
		t.Errorf("leave within that second: %d, want 429", code)
	}
	clock.add(time.Second)
	if code, _ := a.post(t, "/rooms/r/leave", ada.form()); code != http.StatusNoContent {
		t.Errorf("leave a second later: %d, want 204", code)
	}
	if n := memberCount(t, a, "r"); n != 0 {
		t.Errorf("the room has %d members after Ada left, want 0", n)
	}
}

// memberCount returns the number of members of room.
func memberCount(t *testing.T, a *app, room string) int {
	t.Helper()
	snap, err := a.store.Snapshot(context.Background(), ephemeral.WithTenant(room))
	if err != nil {
		t.Fatal(err)
	}
	return len(snap.Entries)
}

// TestStreamsPerClient checks that a client holds at most Limits.Streams event streams, and
// that closing one lets it open another.
func TestStreamsPerClient(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL, guard: limitsWith(func(l *Limits) { l.Streams = 2 })})
	first := a.openStream(t, "r", "")
	first.nextState(t) // the stream is counted by now
	a.openStream(t, "r", "").nextState(t)
	resp, err := http.Get(a.url + "/rooms/r/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third stream: %d, want 429", resp.StatusCode)
	}
	first.body.Close()
	// The server sees the closed connection and ends the stream's handler: wait for that.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(a.url + "/rooms/r/events")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream after one was closed: %d, want 200", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowBody checks that a client sending its form a byte at a time is cut off after the
// body timeout instead of holding its connection.
func TestSlowBody(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL})
	a.srv.bodyTimeout = 300 * time.Millisecond
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The server sets the body's deadline when the handler starts, which can be before this
	// goroutine runs again after the write: take the start before the request is sent.
	start := time.Now()
	_, err = io.WriteString(conn, "POST /rooms/r/join HTTP/1.1\r\nHost: localhost\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=A")
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(start.Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled body: %d, want 408", resp.StatusCode)
	}
	a.wantRejected(t, rejectSlowBody, 1)
	if d := time.Since(start); d < a.srv.bodyTimeout {
		t.Errorf("answered after %v, before the body timeout %v", d, a.srv.bodyTimeout)
	}
}

// TestIdleConnection checks that the server closes a keep-alive connection that sends no next
// request.
func TestIdleConnection(t *testing.T) {
	const idle = 200 * time.Millisecond
	a := startApp(t, appConfig{ttl: testTTL, timeouts: timeouts{idle: idle}})
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The server's idle timeout starts once it has answered, after the request is sent: the
	// connection cannot be closed sooner than idle after this start (one taken after the
	// answer is read could be late by however long this goroutine waited for a CPU).
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /rooms/r HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF (closed by the server)", err)
	}
	if d := time.Since(start); d < idle {
		t.Errorf("closed after %v, before the idle timeout %v", d, idle)
	}
}

// TestClientID checks what a client is counted by: an IPv4 address, an IPv4-mapped IPv6
// address as the IPv4 one, and an IPv6 address by its /64, so that a host rotating through
// its prefix is one client.
func TestClientID(t *testing.T) {
	for _, c := range []struct{ remote, want string }{
		{"192.0.2.1:1234", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:1234", "192.0.2.1"},
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:1", "2001:db8:1:3::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"@", "@"}, // a Unix socket's peer: counted as itself
	} {
		r := &http.Request{RemoteAddr: c.remote}
		if got := clientID(r); got != c.want {
			t.Errorf("clientID(%q) = %q, want %q", c.remote, got, c.want)
		}
	}
}

// TestSlowUnreadBody checks that a request whose body the server does not read (a room that
// does not exist, an unknown path, a page fetched with a body) cannot hold its connection and
// goroutine by sending that body a byte at a time: after its handler answers, net/http reads
// up to 256 KB of an unread body before it writes the answer, and without a deadline it
// would wait for the body for ever. A request refused for its Host name is one of them.
func TestSlowUnreadBody(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL})
	a.srv.bodyTimeout = 300 * time.Millisecond
	for _, req := range []string{
		"POST /rooms/No-Such-Room/join HTTP/1.1\r\nHost: localhost\r\n",
		"POST /nowhere HTTP/1.1\r\nHost: localhost\r\n",
		"GET /rooms/r HTTP/1.1\r\nHost: localhost\r\n",
		"POST /rooms/r/join HTTP/1.1\r\nHost: rebound.example\r\n", // refused by its Host (421)
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(a.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		_, err = io.WriteString(conn, req+"Content-Type: application/x-www-form-urlencoded\r\n"+
			"Content-Length: 100\r\n\r\nname=A")
		if err != nil {
			t.Fatal(err)
		}
		// Far less than the test's timeout, far more than the body timeout.
		conn.SetReadDeadline(start.Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer while the body stalls: %v", strings.TrimSpace(req), err)
		}
		resp.Body.Close()
		if !resp.Close {
			t.Errorf("%s: the connection is kept, with the rest of the body unread", strings.TrimSpace(req))
		}
	}
}

// TestHomeReadsNoBody checks that / takes the room from its query alone, and does not parse
// a multipart body, which r.FormValue would do whatever the method: up to 32 MB in memory, file
// parts beyond that on disk. Unread, the body is only drained, up to 256 KB, after which the
// answer goes out and the connection is closed.
func TestHomeReadsNoBody(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL})
	a.srv.bodyTimeout = time.Minute // longer than the answer may take
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// 10 MB announced, 300 KB sent: more than net/http drains of a body left unread.
	req := "GET /?room=kitchen HTTP/1.1\r\nHost: localhost\r\n" +
		"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 10000000\r\n\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"room\"; filename=\"f\"\r\n\r\n" +
		strings.Repeat("x", 300<<10)
	go io.WriteString(conn, req) // fails once the server closes the connection
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body is unsent: %v", err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/rooms/kitchen" {
		t.Errorf("GET /?room=kitchen: %d to %q, want 303 to /rooms/kitchen", resp.StatusCode, loc)
	}
}

// TestUnreadAnswers checks that a client that sends requests and never reads the answers
// does not hold its connection and goroutine: once the answers fill the sockets' buffers, the
// server's write stalls, and the write timeout closes the connection. An event stream, which
// writes far longer than the write timeout, is not cut by it.
func TestUnreadAnswers(t *testing.T) {
	const write = 300 * time.Millisecond
	conns := new(watchedListener)
	a := startApp(t, appConfig{ttl: testTTL, ping: 20 * time.Millisecond, listener: conns.wrap,
		// Only the write timeout may close the connection.
		timeouts: timeouts{idle: time.Hour, write: write}})
	conn := dialFrom(t, nil, strings.TrimPrefix(a.url, "http://"))
	if err := conn.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	// 2,000 answers of the page's script, some 17 MB: more than the sockets' buffers hold.
	reqs := strings.Repeat("GET /static/app.js HTTP/1.1\r\nHost: localhost\r\n\r\n", 2000)
	go io.WriteString(conn, reqs) // ends when the connection is closed, by either side
	// Far more than the write timeout, far less than the test's timeout.
	deadline := time.Now().Add(30 * time.Second)
	for conns.accepted.Load() == 0 || conns.open() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a client that reads no answer still holds its connection after 30 s "+
				"(write timeout %v)", write)
		}
		time.Sleep(10 * time.Millisecond)
	}

	s := a.openStream(t, "r", "")
	s.nextState(t)
	for start := time.Now(); time.Since(start) < 5*write; {
		s.nextRaw(t) // a keep-alive every 20 ms; fails the test if the stream ends
	}
}

// watchedListener counts the connections a listener accepted and those closed since.
type watchedListener struct {
	net.Listener
	accepted, closed atomic.Int64
}

// wrap makes l watch ln, and returns l.
func (l *watchedListener) wrap(ln net.Listener) net.Listener {
	l.Listener = ln
	return l
}

// open returns the number of accepted connections not closed yet.
func (l *watchedListener) open() int64 { return l.accepted.Load() - l.closed.Load() }

func (l *watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	return &watchedConn{Conn: c, l: l}, nil
}

type watchedConn struct {
	net.Conn
	l    *watchedListener
	once sync.Once
}

func (c *watchedConn) Close() error {
	c.once.Do(func() { c.l.closed.Add(1) })
	return c.Conn.Close()
}

// TestConnsPerClient checks that a client holds at most Limits.Conns connections open at
// once: the server closes the next one as soon as it accepts it, and counts it; once one of
// the client's connections is closed, it accepts another. Another client is not held back.
func TestConnsPerClient(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL, guard: limitsWith(func(l *Limits) { l.Conns = 3 })})
	addr := strings.TrimPrefix(a.url, "http://")
	var conns []net.Conn
	for i := range 3 {
		c := dialFrom(t, nil, addr)
		if err := roundTrip(c); err != nil {
			t.Fatalf("connection %d of 3: %v", i+1, err)
		}
		conns = append(conns, c) // kept alive, idle
	}
	err := roundTrip(dialFrom(t, nil, addr))
	var netErr net.Error
	switch {
	case err == nil:
		t.Fatal("a fourth connection was answered, with three open")
	case errors.As(err, &netErr) && netErr.Timeout():
		t.Fatalf("a fourth connection was neither answered nor closed: %v", err)
	}
	a.wantRejected(t, rejectConns, 1)

	// Another address of the loopback network is another client (on Linux, where
	// 127.0.0.0/8 is the loopback's; other systems have only 127.0.0.1 unless told).
	other := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	switch c, err := (&net.Dialer{LocalAddr: other}).Dial("tcp", addr); {
	case err != nil && runtime.GOOS == "linux":
		t.Fatalf("no connection from %v: %v", other.IP, err)
	case err != nil:
		t.Logf("no connection from %v (%v): another client not checked", other.IP, err)
	default:
		t.Cleanup(func() { c.Close() })
		if err := roundTrip(c); err != nil {
			t.Errorf("a connection of another client: %v", err)
		}
	}

	conns[0].Close()
	// The server sees the close and closes its side: wait for that.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := roundTrip(dialFrom(t, nil, addr))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a connection after one of three was closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dialFrom connects to addr from the local address from (nil: any); the test's cleanup
// closes the connection.
func dialFrom(t *testing.T, from *net.TCPAddr, addr string) net.Conn {
	t.Helper()
	d := &net.Dialer{}
	if from != nil {
		d.LocalAddr = from
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends a request for the style sheet on c and reads the answer, within 10 s.
func roundTrip(c net.Conn) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /static/style.css HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answer %d", resp.StatusCode)
	}
	return nil
}

// A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) is of its own
// origin to the browser, so the check against cross-origin writes lets its join through; the
// app on a loopback address refuses it by its Host name, and answers loopback names.
func TestRebindingRefused(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(a.url, "http://"))
	joinAs := func(host string) int {
		t.Helper()
		req, err := http.NewRequest("POST", a.url+"/rooms/lobby/join", strings.NewReader("name=Mallory"))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://"+host) // as the browser sends it, same-origin
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := joinAs("rebound.example:" + port); code != http.StatusMisdirectedRequest {
		t.Errorf("join with Host rebound.example: %d, want 421", code)
	}
	snap, err := a.store.Snapshot(context.Background(), ephemeral.WithTenant("lobby"))
	if err != nil || len(snap.Entries) != 0 {
		t.Fatalf("room after the refused join: %d members, %v; want none", len(snap.Entries), err)
	}
	a.wantRejected(t, rejectHost, 1)
	for _, host := range []string{"localhost:" + port, "127.0.0.1:" + port} {
		if code := joinAs(host); code != http.StatusOK {
			t.Errorf("join with Host %s: %d, want 200", host, code)
		}
	}
}

func TestHostFilter(t *testing.T) {
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	public := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 8080}
	for _, tc := range []struct {
		list     string
		addr     net.Addr
		any      bool     // a nil check: every name answered
		answered []string // Host headers answered
		refused  []string
	}{
		{list: "", addr: loopback,
			answered: []string{"127.0.0.1:8080", "localhost:8080", "LOCALHOST", "localhost.", "app.localhost:1", "[::1]:8080", "127.0.0.2", "[::ffff:127.0.0.1]:80"},
			refused:  []string{"rebound.example:8080", "", "127.0.0.1.rebound.example", "localhost.rebound.example", "192.0.2.1:8080", "[::2]:80"}},
		{list: "", addr: &net.TCPAddr{IP: net.IPv6loopback}, answered: []string{"[::1]:80"}, refused: []string{"rebound.example"}},
		{list: "", addr: public, any: true},
		{list: "", addr: &net.TCPAddr{IP: net.IPv4zero}, any: true},
		{list: "*", addr: loopback, any: true},
		{list: "Example.COM, 192.0.2.1, ::1", addr: loopback,
			answered: []string{"example.com:443", "example.com.", "EXAMPLE.com", "192.0.2.1:80", "[::1]:8080"},
			refused:  []string{"localhost:8080", "127.0.0.1:8080", "www.example.com", ""}},
	} {
		check, err := hostFilter(tc.list, tc.addr)
		if err != nil {
			t.Fatalf("hostFilter(%q, %v): %v", tc.list, tc.addr, err)
		}
		if (check == nil) != tc.any {
			t.Errorf("hostFilter(%q, %v) answers any name: %v, want %v", tc.list, tc.addr, check == nil, tc.any)
			continue
		}
		for _, h := range tc.answered {
			if !check(h) {
				t.Errorf("hostFilter(%q, %v) refuses Host %q", tc.list, tc.addr, h)
			}
		}
		for _, h := range tc.refused {
			if check(h) {
				t.Errorf("hostFilter(%q, %v) answers Host %q", tc.list, tc.addr, h)
			}
		}
	}
	for _, list := range []string{"example.com,", "a/b", "[", " , example.com"} {
		if _, err := hostFilter(list, loopback); err == nil {
			t.Errorf("hostFilter(%q) accepted it", list)
		}
	}
}
