package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
)

// The flags of TestLoad. Without them it is a small run on memory that takes a few seconds;
// docs/PERFORMANCE.md has the commands of the figures there.
var (
	loadRooms   = flag.Int("load.rooms", 3, "TestLoad: rooms of the members run")
	loadMembers = flag.Int("load.members", 4, "TestLoad: members (pages) per room")
	loadViewers = flag.Int("load.viewers", 12, "TestLoad: pages that watch the room of the viewers run")
	loadChanges = flag.Int("load.changes", 4, "TestLoad: members that join, go away and leave the viewers' room, one after the other (3 changes each)")
	loadEvery   = flag.Duration("load.every", 20*time.Millisecond, "TestLoad: time between two changes of the viewers run")
	loadTTL     = flag.Duration("load.ttl", 3*time.Second, "TestLoad: member TTL of the server in this process; pages beat every third of it, as the page does (-load.servers: the servers' -ttl)")
	loadHold    = flag.Duration("load.hold", 4*time.Second, "TestLoad: how long the pages stay joined once all have joined (longer than the TTL by default: the members live only if their streams renew them)")
	loadRamp    = flag.Duration("load.ramp", 0, "TestLoad: spread the pages' arrivals (stream opens, then joins) over this long")
	loadTimeout = flag.Duration("load.timeout", 30*time.Second, "TestLoad: bound of each wait (for the states, the joins and the changes to reach every page)")
	loadRedis   = flag.String("load.redis", "", "TestLoad: `host:port` of a Redis server to run the presence server on (default: memory)")
	loadServers = flag.String("load.servers", "", "TestLoad: comma-separated `URLs` of presence servers to drive instead of one in this process; a room's pages are spread over them")
	loadPart    = flag.String("load.part", "0/1", "TestLoad: `i/n`: simulate only the rooms r of the members run with r % n == i, and the viewers run only when i is 0")
)

// TestLoad drives the presence server with simulated pages that speak its protocol exactly as
// the room's page and static/app.js do: a page loads the room's page for its member id and
// tokens, opens the room's event stream naming the id and the renewal token (and reconnects
// with Last-Event-ID after 2 s, the stream's retry, when it drops; opens a new one after 3 s
// when the answer is not a stream), joins with a POST, heartbeats every heartbeatMs of the
// join's answer while its stream is down (the stream renews its member while it is open), joins
// again when its heartbeat gets 410 or 403 or it sees its own member expire, and leaves with a
// POST. The server runs in this process on memory, or on the Redis server of -load.redis, with
// the per-client limits raised (every page comes from 127.0.0.1).
//
// With -load.servers it drives running presence servers instead (their -ttl sets the
// heartbeats, and their per-address limits must be raised): the pages of a room are spread over
// the servers, and each page joins through the server after its stream's (its heartbeats and
// leave go to its stream's), so that the events of a room cross processes through their shared
// Redis and every member's token is checked by a process that did not sign it (the servers need
// the same secret). With -load.part i/n this process simulates only the rooms r with r % n == i
// of the members run (and the viewers run only when i is 0), so that n driver processes
// together simulate all the rooms; all pages of a room are in one process, which times its
// joins.
//
// The members run: -load.rooms rooms of -load.members pages. Every page opens its stream and
// waits for its state; then every page joins, and each join is timed from the POST to the
// moment every page of the room (that had its state) has the member's upsert; the pages stay
// -load.hold, renewed by their streams; then they leave. The viewers run: -load.viewers pages
// watch one room while -load.changes members join, go away (a status change) and leave it, one
// change every -load.every, each timed until every viewer has it.
//
// It fails when a page got no state, a join or a change did not reach every page within
// -load.timeout, a request failed, a stream dropped, or a member expired while its page was
// open; the figures are logged (go test -v).
func TestLoad(t *testing.T) {
	part, parts, err := parsePart(*loadPart)
	if err != nil {
		t.Fatalf("-load.part: %v", err)
	}
	var servers []string
	if *loadServers != "" {
		if *loadRedis != "" {
			t.Fatal("-load.redis is the backend of a server in this process; -load.servers drives servers of their own")
		}
		servers = strings.Split(*loadServers, ",")
	}
	target := "memory, ttl " + loadTTL.String()
	switch {
	case servers != nil:
		target = fmt.Sprintf("%d servers %s", len(servers), *loadServers)
	case *loadRedis != "":
		target = "redis " + *loadRedis + ", ttl " + loadTTL.String()
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("presence load on %s: rooms r %% %d == %d, hold %v, ramp %v, load average %s", target, parts, part, *loadHold, *loadRamp,
		strings.Join(strings.Fields(string(load))[:3], " "))
	t.Run("members", func(t *testing.T) {
		rooms := (*loadRooms - part + parts - 1) / parts // those r with r % parts == part
		checkDescriptors(t, rooms**loadMembers, servers)
		testLoadMembers(t, newLoadRun(t, servers), *loadRooms, *loadMembers, part, parts)
	})
	t.Run("viewers", func(t *testing.T) {
		if part != 0 {
			t.Skipf("the viewers run is part 0's, this is part %d", part)
		}
		checkDescriptors(t, *loadViewers, servers)
		testLoadViewers(t, newLoadRun(t, servers), *loadViewers, *loadChanges)
	})
}

// checkDescriptors fails a run at once when its pages need more file descriptors than this
// process may open (see descriptorsNeeded). Out of them, the run would not fail but stall:
// the server retries its accept once a second and the pages their requests, until each wait
// of -load.timeout ends (2,000 rooms of 10 in one process, ulimit -n 20,000, 2026-12-02).
func checkDescriptors(t *testing.T, pages int, servers []string) {
	limit := openFileLimit()
	if need := descriptorsNeeded(pages, servers); limit > 0 && need > limit {
		t.Fatalf("%d pages need about %d file descriptors in this process, and it may open %d (ulimit -n): "+
			"simulate fewer, or drive servers of their own from several processes (loadrun.sh: -load.servers, -load.part)",
			pages, need, limit)
	}
}

// descriptorsNeeded estimates the file descriptors that pages take in this process, driving
// servers (none: a server in this process): each page's stream holds one, and one more in a
// server here; the pages' other requests up to maxPostConns connections per server, as many;
// and a margin for the rest (listeners, Redis connections, the standard files).
func descriptorsNeeded(pages int, servers []string) int {
	per, n := 1, len(servers)
	if n == 0 {
		per, n = 2, 1
	}
	return per*(pages+min(pages, maxPostConns)*n) + 128
}

// parsePart parses the i/n of -load.part.
func parsePart(s string) (i, n int, err error) {
	is, ns, ok := strings.Cut(s, "/")
	if ok {
		i, err = strconv.Atoi(is)
	}
	if ok && err == nil {
		n, err = strconv.Atoi(ns)
	}
	if !ok || err != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("%q: want i/n with 0 <= i < n", s)
	}
	return i, n, nil
}

// maxPostConns bounds the connections of the pages' requests other than their streams, per
// server: a browser keeps at most six per host; here it bounds the descriptors of the run
// (each page's stream holds one in the pages' process, and one in the server's). Without it,
// 800 rooms of 10 in one process ran out of descriptors (ulimit -n 20,000) in a burst of
// heartbeats.
const maxPostConns = 1 << 10

// newLoadRun returns a load run against servers, or against a presence server started in this
// process when there are none, with rooms of at most 200 members as the server's default
// -room-size.
func newLoadRun(t *testing.T, servers []string) *loadRun {
	if len(servers) == 0 {
		a := startApp(t, appConfig{ttl: *loadTTL, redis: *loadRedis, guard: Unlimited, limits: ephemeral.Limits{MaxEntries: 200}})
		servers = []string{a.url}
	}
	// Idle connections are dropped before the server's idle timeout would close them under a
	// request (which would fail it: Go does not send a POST again, where a browser would).
	posts := &http.Transport{MaxIdleConnsPerHost: maxPostConns, MaxConnsPerHost: maxPostConns,
		DisableCompression: true, IdleConnTimeout: idleTimeout / 2}
	streams := &http.Transport{DisableCompression: true, DisableKeepAlives: true}
	t.Cleanup(posts.CloseIdleConnections)
	return &loadRun{servers: servers, client: &http.Client{Transport: posts}, streams: &http.Client{Transport: streams}}
}

// testLoadMembers is the members run of the rooms r of [0, rooms) with r % parts == part.
func testLoadMembers(t *testing.T, l *loadRun, rooms, members, part, parts int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pages []*loadPage
	for i := range rooms {
		if i%parts != part {
			continue
		}
		room := l.room(fmt.Sprintf("load-%d", i))
		for j := range members {
			pages = append(pages, l.page(room, fmt.Sprintf("member %d of %d", j, i), i+j))
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	l.openStreams(ctx, &wg, pages)

	// Every page joins; each join must reach every page of its room that has its state.
	joined := time.Now()
	l.spread(ctx, len(pages), func(i int) {
		p := pages[i]
		if p.join(ctx, true) {
			p.startBeat(ctx, &wg)
		}
	})
	joinsDone := time.Now()
	allSeen := l.waitAll(ctx)
	t.Logf("%d joins in %v; every join seen by every page of its room %v after the first join",
		len(pages), joinsDone.Sub(joined).Round(time.Millisecond), time.Since(joined).Round(time.Millisecond))
	if !allSeen {
		t.Errorf("joins not seen by every page of the room within %v: %d of %d", *loadTimeout, l.unseen(), len(pages))
	}

	// The pages stay, beating, then leave.
	hold := time.NewTimer(*loadHold)
	select {
	case <-hold.C:
	case <-ctx.Done():
	}
	l.spread(ctx, len(pages), func(i int) { pages[i].leave(ctx) })
	l.report(t, len(pages), "join → all members of the room")
}

func testLoadViewers(t *testing.T, l *loadRun, viewers, changes int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	room := l.room("viewers")
	room.leaves = true
	pages := make([]*loadPage, viewers)
	for i := range pages {
		pages[i] = l.page(room, fmt.Sprintf("viewer %d", i), i)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	l.openStreams(ctx, &wg, pages)

	// One page that does not follow the stream makes the changes: a member joins, goes away,
	// leaves; then the next one.
	start, cpu := time.Now(), cpuTime()
	tick := time.NewTicker(*loadEvery)
	defer tick.Stop()
	next := func() bool {
		select {
		case <-tick.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for i := range changes {
		p := l.page(room, fmt.Sprintf("changer %d", i), i)
		if !p.join(ctx, true) || !next() {
			continue
		}
		p.setStatus(ctx, StatusAway)
		if !next() {
			continue
		}
		p.leave(ctx)
		if !next() {
			break
		}
	}
	sent := time.Since(start)
	allSeen := l.waitAll(ctx)
	t.Logf("%d changes to a room of %d viewers in %v; every change seen by every viewer %v after the first",
		3*changes, viewers, sent.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if c := cpuTime() - cpu; c > 0 && changes > 0 && viewers > 0 {
		t.Logf("CPU of the process (server and pages) per change per viewer: %.1fµs",
			float64(c)/1e3/float64(3*changes*viewers))
	}
	if !allSeen {
		t.Errorf("changes not seen by every viewer within %v: %d of %d", *loadTimeout, l.unseen(), 3*changes)
	}
	l.spread(ctx, len(pages), func(i int) { pages[i].close() })
	l.report(t, viewers, "change → all viewers")
}

// loadRun is one run of simulated pages against presence servers, and its figures.
type loadRun struct {
	servers []string     // their URLs
	client  *http.Client // for the pages' requests other than streams
	streams *http.Client // for the event streams
	rooms   []*loadRoom

	state, joinPost, seen, beatPost samples
	noState                         atomic.Int64 // pages without their state within the timeout
	failed                          atomic.Int64 // requests that failed or got an unexpected status
	expired                         atomic.Int64 // expire events of a member whose page was open, seen by that page
	gone                            atomic.Int64 // heartbeats answered 410 or 403: the member was gone
	reconnects                      atomic.Int64 // streams that dropped and were opened again
	unseenN                         atomic.Int64 // changes sent not yet seen by all (see unseen)
	resent                          atomic.Int64 // heartbeats sent again (see loadPage.beat)
	firstErr                        atomic.Value // the first failure, as a string
}

// fail counts a failed request or stream.
func (l *loadRun) fail(format string, args ...any) {
	l.failed.Add(1)
	l.firstErr.CompareAndSwap(nil, fmt.Sprintf(format, args...))
}

// room returns a new room of the run.
func (l *loadRun) room(name string) *loadRoom {
	r := &loadRoom{name: name, sent: map[string]time.Time{}, seen: map[string]*arrival{}, unseen: &l.unseenN}
	l.rooms = append(l.rooms, r)
	return r
}

// page returns a new page of room, the k-th of the run's spread: its stream, heartbeats,
// status changes and leave go to server k (modulo their number), its joins to the next.
func (l *loadRun) page(r *loadRoom, name string, k int) *loadPage {
	n := len(l.servers)
	return &loadPage{l: l, room: r, name: name, stated: make(chan struct{}),
		homeURL: l.servers[k%n], joinURL: l.servers[(k+1)%n]}
}

// spread calls f(i) for every i in [0, n), each in a goroutine of its own, the starts spread
// evenly over -load.ramp, and waits for them.
func (l *loadRun) spread(ctx context.Context, n int, f func(i int)) {
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(*loadRamp * time.Duration(i) / time.Duration(n))); d > 0 {
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
			}
		}
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

// openStreams opens the event stream of every page, spread over the ramp, and waits until
// each has its state or the timeout has passed. The pages with their state by then are the
// ones whose receipts count, in every room.
func (l *loadRun) openStreams(ctx context.Context, wg *sync.WaitGroup, pages []*loadPage) {
	l.spread(ctx, len(pages), func(i int) {
		p := pages[i]
		wg.Go(func() { p.follow(ctx) })
	})
	wait, cancel := context.WithTimeout(ctx, *loadTimeout)
	defer cancel()
	for _, p := range pages {
		select {
		case <-p.stated:
		case <-wait.Done(): // done for good: the pages left without state are not waited for
		}
	}
	for _, r := range l.rooms {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
	}
	for _, p := range pages {
		if !p.counted.Load() {
			l.noState.Add(1)
		}
	}
}

// waitAll waits until every change sent to every room has reached every page of the room
// that counts, or the timeout has passed, and reports which.
func (l *loadRun) waitAll(ctx context.Context) bool {
	deadline := time.Now().Add(*loadTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for l.unseen() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// unseen returns the number of changes sent that some page of their room that counts has not
// seen. The rooms keep it as they go (see loadRoom.sentAt and saw): waitAll asks every 10 ms,
// and a scan of every change of every room each time held each room's lock against its pages.
func (l *loadRun) unseen() int {
	return int(l.unseenN.Load())
}

// report collects the time from each change to its receipt by every page, logs the figures
// and fails the test on a page without state, a change not seen everywhere, a failed request,
// a dropped stream or an expiry while a page was open.
func (l *loadRun) report(t *testing.T, pages int, seenName string) {
	t.Helper()
	for _, r := range l.rooms {
		r.mu.Lock()
		for key, sent := range r.sent {
			if a := r.seen[key]; a != nil && !a.all.IsZero() {
				l.seen.add(a.all.Sub(sent))
			}
		}
		r.mu.Unlock()
	}
	t.Logf("%-34s %d of %d pages  %s", "stream open → state", pages-int(l.noState.Load()), pages, l.state.summary())
	t.Logf("%-34s %s", "join POST", l.joinPost.summary())
	t.Logf("%-34s %s", seenName, l.seen.summary())
	t.Logf("%-34s %s", "heartbeat POST", l.beatPost.summary())
	t.Logf("%-34s %d (heartbeats that found the member gone: %d)", "expired while the page was open", l.expired.Load(), l.gone.Load())
	t.Logf("%-34s %d failed requests, %d reconnects, %d heartbeats sent again %v", "errors", l.failed.Load(), l.reconnects.Load(), l.resent.Load(), l.firstErr.Load())
	if n := l.noState.Load(); n > 0 {
		t.Errorf("%d of %d pages got no state within %v", n, pages, *loadTimeout)
	}
	if n, g := l.expired.Load(), l.gone.Load(); n > 0 || g > 0 {
		t.Errorf("%d members expired while their page was open; %d heartbeats found their member gone", n, g)
	}
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d requests or streams failed, the first: %v", n, l.firstErr.Load())
	}
	if n := l.reconnects.Load(); n > 0 {
		t.Errorf("%d streams dropped", n)
	}
}

// loadRoom is a room of a load run: when each change was sent, and which pages saw it.
type loadRoom struct {
	name   string
	leaves bool // a page's leave is a change to time

	mu     sync.Mutex
	closed bool                 // the pages that count are known
	pages  int                  // the pages that count: those with their state in time
	sent   map[string]time.Time // change -> when its request was sent
	seen   map[string]*arrival  // change -> its receipts
	// unseen counts the changes in sent that some page that counts has not seen, in all the
	// rooms of the run.
	unseen *atomic.Int64
}

// arrival is the receipts of one change in a room.
type arrival struct {
	n   int       // pages that saw it
	all time.Time // when the last of the room's pages saw it
}

// change names a change as the pages see it: "upsert/<id>/<status>", "delete/<id>".
func change(event, id string, status Status) string {
	if event == "upsert" {
		return event + "/" + id + "/" + string(status)
	}
	return event + "/" + id
}

// sentAt records when the request of a change was sent.
func (r *loadRoom) sentAt(key string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sent[key]; !ok {
		r.sent[key] = at
		if a := r.seen[key]; a == nil || a.all.IsZero() {
			r.unseen.Add(1) // not seen by all yet: the request's answer may come after its event
		}
	}
}

// saw counts the receipt of a change by a page that counts.
func (r *loadRoom) saw(key string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.seen[key]
	if a == nil {
		a = new(arrival)
		r.seen[key] = a
	}
	a.n++
	if a.n == r.pages {
		a.all = at
		if _, ok := r.sent[key]; ok {
			r.unseen.Add(-1)
		}
	}
}

// loadPage is one simulated browser tab of a room.
type loadPage struct {
	l         *loadRun
	room      *loadRoom
	name      string
	homeURL   string        // the server of its stream, heartbeats, status changes and leave
	joinURL   string        // the server of its joins
	stated    chan struct{} // closed at the page's first state
	counted   atomic.Bool   // it had its state in time: its receipts count
	joining   atomic.Bool   // a join again is in flight
	streaming atomic.Bool   // a connection of its stream is open: it renews the member

	mu          sync.Mutex
	self, token string        // the member id that the page's stream names and its joins use, and its token
	renew       string        // the member's renewal token, for the stream's URL
	joined      bool          // it has joined: self is its member
	beatEvery   time.Duration // from the join's answer
	left        bool
	cancel      context.CancelFunc // ends the stream
	stopBeat    func()             // ends the heartbeats and waits for the one in flight
}

// follow reads the room's event stream until ctx ends or the page leaves, as EventSource and
// the page do: after a dropped connection it reconnects with Last-Event-ID after 2 s (the
// stream's retry); after an answer that is not a stream (EventSource closes), the page opens
// a new one without it after 3 s.
func (p *loadPage) follow(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	p.mu.Lock()
	if p.left {
		p.mu.Unlock()
		cancel()
		return
	}
	p.cancel = cancel
	p.mu.Unlock()
	defer cancel()
	if err := p.load(ctx); err != nil {
		if ctx.Err() == nil {
			p.l.fail("page of %s: %v", p.room.name, err)
		}
		return
	}
	opened := time.Now()
	lastID := ""
	for {
		err := p.stream(ctx, opened, &lastID)
		if ctx.Err() != nil {
			return
		}
		p.l.reconnects.Add(1)
		p.l.firstErr.CompareAndSwap(nil, fmt.Sprintf("stream of %s: %v", p.room.name, err))
		wait := 2 * time.Second
		if errors.Is(err, errNotStream) {
			wait, lastID = 3*time.Second, ""
		}
		retry := time.NewTimer(wait)
		select {
		case <-retry.C:
		case <-ctx.Done():
			retry.Stop()
			return
		}
	}
}

// memberAttrs finds the member id, token and renewal token that the room's page carries.
var memberAttrs = regexp.MustCompile(`data-member-id="([^"]+)" data-member-token="([^"]+)" data-renew-token="([^"]+)"`)

// load gets the room's page, as the browser does before it runs app.js, for the member id and
// token that the page's stream names and its joins use.
func (p *loadPage) load(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, "GET", p.homeURL+"/rooms/"+p.room.name, nil)
	if err != nil {
		return err
	}
	resp, err := p.l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	m := memberAttrs.FindSubmatch(body)
	if m == nil {
		return errors.New("no member id and token in the page")
	}
	p.mu.Lock()
	p.self, p.token, p.renew = string(m[1]), string(m[2]), string(m[3])
	p.mu.Unlock()
	return nil
}

// errNotStream is an answer to a stream request that is not an event stream.
var errNotStream = errors.New("not an event stream")

// stream reads one connection of the event stream until it ends, and returns why.
func (p *loadPage) stream(ctx context.Context, opened time.Time, lastID *string) error {
	p.mu.Lock()
	query := url.Values{"id": {p.self}, "renew": {p.renew}}.Encode()
	p.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, "GET", p.homeURL+"/rooms/"+p.room.name+"/events?"+query, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := p.l.streams.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("%w: %d %s", errNotStream, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	p.streaming.Store(true)
	defer p.streaming.Store(false)
	r := bufio.NewReader(resp.Body)
	var event, data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		field, value, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
		switch field {
		case "id":
			*lastID = value
		case "event":
			event = value
		case "data":
			data = value
		case "":
			if event != "" {
				p.dispatch(ctx, event, data, time.Now(), opened)
			}
			event, data = "", ""
		}
	}
}

// renewed takes the fresh renewal token of data, a heartbeat's answer or a stream's "renew"
// message, for the page's next stream, as the page does.
func (p *loadPage) renewed(data string) {
	var r renewed
	if err := json.Unmarshal([]byte(data), &r); err != nil || r.Renew == "" {
		p.l.fail("renewal token %q: %v", data, err)
		return
	}
	p.mu.Lock()
	p.renew = r.Renew
	p.mu.Unlock()
}

// dispatch handles one message as the page does, and counts its receipt.
func (p *loadPage) dispatch(ctx context.Context, event, data string, now, opened time.Time) {
	switch event {
	case "renew":
		p.renewed(data)
	case "state":
		select {
		case <-p.stated:
			return // a fresh state after a resync
		default:
		}
		p.l.state.add(now.Sub(opened))
		p.room.mu.Lock()
		if !p.room.closed {
			p.counted.Store(true)
			p.room.pages++
		}
		p.room.mu.Unlock()
		close(p.stated)
	case "upsert":
		var m memberView
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			p.l.fail("upsert %q: %v", data, err)
			return
		}
		if p.counted.Load() {
			p.room.saw(change(event, m.ID, m.Status), now)
		}
	case "delete", "expire":
		var g goneMessage
		if err := json.Unmarshal([]byte(data), &g); err != nil {
			p.l.fail("%s %q: %v", event, data, err)
			return
		}
		if p.counted.Load() {
			p.room.saw(change(event, g.ID, ""), now)
		}
		p.mu.Lock()
		mine := p.joined && g.ID == p.self && !p.left
		p.mu.Unlock()
		if mine && event == "expire" {
			p.l.expired.Add(1)
			go p.rejoin(ctx) // we were too slow: come back
		}
	}
}

// join joins the room with the page's id and token (the page's, or those of its last join;
// a page that never loaded the room's page takes the server's new ones); first says that
// this is the page's first join, the one timed to every page of the room. It reports whether
// the page is joined.
func (p *loadPage) join(ctx context.Context, first bool) bool {
	form := url.Values{"name": {p.name}, "status": {string(StatusActive)}}
	p.mu.Lock()
	if p.self != "" {
		form.Set("id", p.self)
		form.Set("token", p.token)
	}
	p.mu.Unlock()
	start := time.Now()
	code, body, err := p.post(ctx, p.joinURL, "/join", form)
	if first {
		p.l.joinPost.add(time.Since(start))
	}
	if err != nil || code != http.StatusOK {
		p.l.fail("join %s: %d %s %v", p.room.name, code, body, err)
		return false
	}
	var j joined
	if err := json.Unmarshal([]byte(body), &j); err != nil {
		p.l.fail("join answer %q: %v", body, err)
		return false
	}
	if form.Has("id") && j.ID != form.Get("id") {
		// The page's stream names its member; the servers share the secret, so the id holds.
		p.l.fail("join %s: the server gave the page the id %s, not its own %s", p.room.name, j.ID, form.Get("id"))
		return false
	}
	p.mu.Lock()
	p.self, p.token, p.renew, p.joined = j.ID, j.Token, j.Renew, true
	p.beatEvery = time.Duration(j.HeartbeatMS) * time.Millisecond
	p.mu.Unlock()
	if first {
		p.room.sentAt(change("upsert", j.ID, StatusActive), start)
	}
	return true
}

// rejoin joins again unless a join is in flight, as the page does.
func (p *loadPage) rejoin(ctx context.Context) {
	if p.joining.CompareAndSwap(false, true) {
		defer p.joining.Store(false)
		p.join(ctx, false)
	}
}

// startBeat starts the page's heartbeats in a goroutine of wg; the page's leave stops them
// before it sends the leave, as the page clears its interval. A heartbeat in flight is not
// cancelled but waited for, as the page's clearInterval does not abort its fetch: cancelling a
// request on the shared keep-alive connections could also fail another page's request (a
// suspected cause of rare "context canceled" heartbeats whose own context was not done).
func (p *loadPage) startBeat(ctx context.Context, wg *sync.WaitGroup) {
	stop, done := make(chan struct{}), make(chan struct{})
	p.mu.Lock()
	p.stopBeat = sync.OnceFunc(func() { close(stop); <-done })
	p.mu.Unlock()
	wg.Go(func() {
		defer close(done)
		p.beat(ctx, stop)
	})
}

// beat heartbeats every beatEvery until stop is closed or ctx ends, and joins again when the
// member is gone.
func (p *loadPage) beat(ctx context.Context, stop <-chan struct{}) {
	p.mu.Lock()
	every := p.beatEvery
	p.mu.Unlock()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
		p.mu.Lock()
		form, left := url.Values{"id": {p.self}, "token": {p.token}}, p.left
		p.mu.Unlock()
		if left {
			return
		}
		if p.joining.Load() || p.streaming.Load() {
			continue // as the page: no heartbeat while a join is in flight or the stream renews
		}
		start := time.Now()
		code, body, err := p.post(ctx, p.homeURL, "/heartbeat", form)
		if err != nil && ctx.Err() == nil && strings.Contains(err.Error(), errIdleClosed) {
			// net/http closed the kept-alive connection as idle while the request was on it (a
			// race of its idle timer, seen when the process waits seconds for a CPU). A browser
			// sends a request that failed on a reused connection again; so does this page, for
			// a heartbeat, which touches the member and may be sent twice.
			p.l.resent.Add(1)
			code, body, err = p.post(ctx, p.homeURL, "/heartbeat", form)
		}
		if ctx.Err() != nil {
			return
		}
		p.l.beatPost.add(time.Since(start))
		switch {
		case err != nil:
			p.l.fail("heartbeat %s: %v", p.room.name, err)
		case code == http.StatusGone || code == http.StatusForbidden:
			p.l.gone.Add(1)
			p.rejoin(ctx)
		case code != http.StatusOK:
			p.l.fail("heartbeat %s: %d %s", p.room.name, code, body)
		default:
			p.renewed(body) // a fresh renewal token, as the page takes it
		}
	}
}

// setStatus changes the member's status, as the page does when it is hidden or shown.
func (p *loadPage) setStatus(ctx context.Context, s Status) {
	p.mu.Lock()
	form := url.Values{"id": {p.self}, "token": {p.token}, "status": {string(s)}}
	p.mu.Unlock()
	start := time.Now()
	if code, body, err := p.post(ctx, p.homeURL, "/status", form); err != nil || code != http.StatusNoContent {
		p.l.fail("status %s: %d %s %v", p.room.name, code, body, err)
		return
	}
	p.room.sentAt(change("upsert", form.Get("id"), s), start)
}

// leave removes the page's member and closes its stream, as the page does when it goes away.
func (p *loadPage) leave(ctx context.Context) {
	p.mu.Lock()
	stopBeat := p.stopBeat
	p.mu.Unlock()
	if stopBeat != nil {
		stopBeat()
	}
	p.mu.Lock()
	form, joined := url.Values{"id": {p.self}, "token": {p.token}}, p.joined
	p.left = true
	p.mu.Unlock()
	if joined {
		start := time.Now()
		if code, body, err := p.post(ctx, p.homeURL, "/leave", form); err != nil || code != http.StatusNoContent {
			p.l.fail("leave %s: %d %s %v", p.room.name, code, body, err)
		} else if p.room.leaves {
			p.room.sentAt(change("delete", form.Get("id"), ""), start)
		}
	}
	p.close()
}

// close closes the page's stream.
func (p *loadPage) close() {
	p.mu.Lock()
	p.left = true
	cancel := p.cancel
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// post sends a form to the room's path on the server at base as the page's fetch does, and
// returns the status and the body.
func (p *loadPage) post(ctx context.Context, base, path string, form url.Values) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/rooms/"+p.room.name+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.l.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// errIdleClosed is the text of net/http's error for a kept-alive connection that its idle
// timer closed.
const errIdleClosed = "http: idle connection timeout"

// samples collects durations and summarises them with exact percentiles.
type samples struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *samples) add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

// summary returns the count, p50, p99 and max, or "none".
func (s *samples) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.d) == 0 {
		return "none"
	}
	slices.Sort(s.d)
	q := func(f float64) time.Duration { return s.d[min(len(s.d)-1, int(f*float64(len(s.d))))] }
	return fmt.Sprintf("n=%s p50=%v p99=%v max=%v", strconv.Itoa(len(s.d)), round(q(0.5)), round(q(0.99)), round(s.d[len(s.d)-1]))
}

// round rounds d to three significant digits or so, for the log.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// TestLoadServers is the members run across processes in small: two servers that share a
// backend and a secret, driven by two parts of the rooms at once, each page's stream on one
// server and its join on the other.
func TestLoadServers(t *testing.T) {
	secret := []byte("the servers' shared secret")
	a := startApp(t, appConfig{ttl: *loadTTL, guard: Unlimited, secret: secret})
	b := startApp(t, appConfig{ttl: *loadTTL, guard: Unlimited, secret: secret, backend: a.backend})
	servers := []string{a.url, b.url}
	for part := range 2 {
		t.Run(fmt.Sprintf("part %d of 2", part), func(t *testing.T) {
			t.Parallel()
			testLoadMembers(t, newLoadRun(t, servers), 4, 3, part, 2)
		})
	}
}

func TestParsePart(t *testing.T) {
	for _, c := range []struct {
		s    string
		i, n int
	}{{"0/1", 0, 1}, {"1/2", 1, 2}, {"3/4", 3, 4}} {
		if i, n, err := parsePart(c.s); err != nil || i != c.i || n != c.n {
			t.Errorf("parsePart(%q) = %d, %d, %v; want %d, %d", c.s, i, n, err, c.i, c.n)
		}
	}
	for _, s := range []string{"", "1", "2/2", "-1/2", "0/0", "a/2", "1/b", "0/1/2"} {
		if _, _, err := parsePart(s); err == nil {
			t.Errorf("parsePart(%q): no error", s)
		}
	}
}

// TestDescriptorsNeeded checks the estimate against the most descriptors that loadrun.sh's
// drivers held (2026-12-02): 11,410 for 10,000 pages against two servers, 1,021 for 1,000; the
// run of 2,000 rooms of 10 with its server in this process, which stalled at ulimit -n 20,000;
// and the default run, which must fit any limit a test process may meet.
func TestDescriptorsNeeded(t *testing.T) {
	two := []string{"http://a", "http://b"}
	for _, c := range []struct {
		pages    int
		servers  []string
		atLeast  int
		atMost   int
		measured string
	}{
		{10_000, two, 11_410, 1 << 30, "a driver of 2,000 rooms × 10"},
		{1_000, two, 1_021, 1 << 30, "a driver of 200 rooms × 10"},
		{20_000, nil, 20_001, 1 << 30, "2,000 rooms × 10 in one process"},
		{3*4 + 12, nil, 0, 256, "the default members and viewers runs"},
	} {
		if n := descriptorsNeeded(c.pages, c.servers); n < c.atLeast || n > c.atMost {
			t.Errorf("%s: %d descriptors, want %d to %d", c.measured, n, c.atLeast, c.atMost)
		}
	}
}

// TestUnseen checks the run's count of unseen changes against a count of every change of every
// room, as the rooms' pages see changes before and after their requests' answers.
func TestUnseen(t *testing.T) {
	l := &loadRun{}
	a, b := l.room("a"), l.room("b")
	a.pages, b.pages = 2, 1
	at := time.Now()
	check := func(step string, want int) {
		t.Helper()
		n := 0
		for _, r := range l.rooms {
			for key := range r.sent {
				if a := r.seen[key]; a == nil || a.all.IsZero() {
					n++
				}
			}
		}
		if got := l.unseen(); got != want || n != want {
			t.Errorf("after %s: unseen %d, counted %d, want %d", step, got, n, want)
		}
	}
	// Each step a page's receipt of a change (saw) or its request's answer (sent), in order;
	// want is the count after it.
	for _, st := range []struct {
		r    *loadRoom
		sent bool
		key  string
		want int
		what string
	}{
		{a, true, "join x", 1, "a change sent"},
		{a, true, "join x", 1, "the same change sent again"},
		{a, false, "join x", 1, "one page of two saw it"},
		{a, false, "join x", 0, "both pages saw it"},
		{a, false, "join x", 0, "a page saw it twice"},
		{a, false, "join y", 0, "a change seen by one page before its answer"},
		{a, false, "join y", 0, "a change seen by all before its answer"},
		{a, true, "join y", 0, "its answer"},
		{a, false, "join z", 0, "another change seen by one page before its answer"},
		{a, true, "join z", 1, "its answer"},
		{b, true, "join x", 2, "a change of the other room"},
		{b, false, "join x", 1, "its page saw it"},
		{a, false, "join z", 0, "all seen"},
		{a, false, "leave w", 0, "a change never sent, seen"},
	} {
		if st.sent {
			st.r.sentAt(st.key, at)
		} else {
			st.r.saw(st.key, at)
		}
		check(st.what, st.want)
	}
}
