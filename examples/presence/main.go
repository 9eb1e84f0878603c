// Presence is a live "who is here" page: open http://127.0.0.1:8080/ in two browser tabs, pick
// a name in each, and watch both appear, go away (another tab) and come back, leave (close the
// tab), or time out (kill the tab) in the other.
//
//	go run ./examples/presence                   # memory backend, one process
//	go run ./examples/presence -ttl 30s -addr 127.0.0.1:9000
//
// With -redis the rooms live in Redis and any number of processes serve them; give them the
// same secret, the key that signs member tokens, so that a page's requests may reach any of
// them: in the environment variable PRESENCE_SECRET or in a file named by -secret-file (one of
// them, at least 16 bytes; not on the command line, which ps shows to every user of the
// machine). Without either, each process makes a random one at start. Each process sends its
// commands over a pool of -redis-pool connections (go-redis's default, 10 per CPU, unless set):
// raise it for thousands of pages per process, whose stream opens, joins and renewals
// otherwise wait for a connection (and fail after go-redis's pool timeout, 4 s):
//
//	export PRESENCE_SECRET=$(head -c 24 /dev/urandom | base64)   # the same for every process
//	go run ./examples/presence -redis 127.0.0.1:6379
//	go run ./examples/presence -redis 127.0.0.1:6379 -addr 127.0.0.1:8081
//
// # What it shows
//
// Each visitor is a [Member] in a [MemberStore], generated from the directive in member.go by
// go generate ./examples/presence. A member is keyed by a random member ID and lives for the
// TTL (-ttl, 10 s by default) unless its page renews it:
//
//   - Join is a conditional create (IfNew), leave is a Remove with reason "left" that the page
//     sends with navigator.sendBeacon on pagehide, so closing a tab is seen at once.
//   - Renewals, every TTL/3, are quiet touches: they extend the expiry without a new version
//     or an event. A room of n members renewed every few seconds would otherwise send n² stream
//     messages to its pages for no visible change. The price is that pages cannot show a "last
//     seen" time; they show what changes rarely instead: the name, the status (active, or away
//     while the tab is hidden, an upsert guarded by IfVersion) and "joined 2 min ago", which is
//     the entry's CreatedAt.
//   - The page's event stream renews its member, not the page. The room's page comes with a
//     member id, its token and its renewal token; the page joins with the id and token, names
//     the id and the renewal token in its stream's URL, and while the stream is open the server
//     touches the member, with the others of the room in one TouchMany, and the rooms of one
//     25 ms slot of the interval at the same moment, so that their calls share Redis round
//     trips (see renewals in renewal.go); the page POSTs heartbeats only while its stream is
//     down. A heartbeat per page every few seconds was an HTTP request each, and at 20,000
//     pages their handler took about a quarter of a server's CPU (docs/PERFORMANCE.md).
//   - A page that dies without leaving (crash, killed process, lost network) loses its stream;
//     its member expires at most one TTL after its last renewal, and the backend's expire event
//     removes it from every other page.
//
// # Rooms are tenants
//
// A page per room, /rooms/{room}, maps to a tenant per room rather than a key prefix in one
// tenant. Tenants are hard isolation: each room has its own event stream (a room's readers are
// not woken by the traffic of other rooms), its own versions and its own MaxEntries quota, and
// an abandoned room's state expires with it. A prefix per room would suit a page that shows
// several rooms at once; this one never does.
//
// # Event stream
//
// Each page opens a Server-Sent Events stream (GET /rooms/{room}/events). The server takes a
// snapshot of the room, sends it as a "state" message, and then relays the events of a reader
// started after the snapshot's cursor: "upsert", "delete", "expire". Every message's SSE id is
// the store cursor after it. When the connection drops, the browser reconnects on its own and
// sends the last id as Last-Event-ID; the server resumes with a reader After that cursor, so
// the page misses nothing and gets nothing twice. When the cursor is invalid, or too old for
// the retained history (the reader reports an overflow), the page gets a fresh "state".
//
// The page keeps the room's state itself, so the server keeps no replica: an [ephemeral.Mirror]
// per room would hold the room in the server's memory, but its changes carry versions, not the
// cursors that a reconnecting page resumes from. Readers are cheap: the memory backend wakes
// them directly, and the Redis backend shares one blocking read per room among all the readers
// of a process. Browsers open at most six HTTP/1.1 connections per host, so a seventh tab of
// the same browser waits; serve over HTTP/2 (TLS) for more.
//
// Per-connection goroutines end with the request's context; on SIGINT the server stops
// accepting connections, ends every stream and exits.
//
// # Limits
//
// The server is meant to face the open internet, so every resource a client can hold is bounded. A
// room holds at most -room-size members (200; MaxEntries of the store), so one client cannot make a
// room full and its state large. Per client IP address, at most -max-conns connections are open at
// once (32; the server closes more as soon as it accepts them), at most -max-streams event streams
// (8; more get 429), streams are opened at -stream-rate per second with bursts of -stream-burst
// (1/s and 16: each makes the server hold its room's state for the event retention, 5 minutes, even
// if it closes at once), joins at -join-rate with bursts of -join-burst (1/s and 5), and
// heartbeats, status changes and leaves at -write-rate with bursts of -write-burst (4/s and 20:
// each is a write, and a status change or a leave an event to every page of the room; a page whose
// leave is refused expires within a TTL instead); more get 429 with Retry-After. A join whose name
// is invalid is refused before it counts. So one address keeps at most some 58 members alive (8 by
// their streams, some 40 by heartbeats, as each extends its member a whole TTL, and some 10 joined
// within the last TTL, at the default TTL of 10 s): four addresses can fill a room. One address
// makes the server hold at most some 300 rooms. Pages (the home page, a room's page) and static
// files are not rated: each costs no store call and leaves no state, about what a rate check costs
// itself, and -max-conns bounds a client's share. An IPv6 client is counted by its address's /64
// prefix, as it may use any address in it; a client with many prefixes (a /48 holds 65,536)
// multiplies every bound, so limit per network at a proxy in front where that matters. Headers must
// arrive within 10 s and a request's body within 5 s (a form's: 408; any other's, which the server
// does not read: the answer closes the connection), a form is at most 1 KB (413), an idle
// keep-alive connection is closed after 30 s, and one whose client does not read its answer after
// 10 s (an event stream's deadline moves on with each of its writes, so a quiet stream stays). Only
// the page's script and style sheet are served from static/ (no listings, not the template), every
// response carries a Content-Security-Policy (default-src 'self'; frame-ancestors 'none') and
// nosniff.
//
// A server on a loopback address, as by default, answers only requests whose Host header names
// the loopback interface (localhost, 127.0.0.1, [::1]); others get 421. That stops DNS
// rebinding: a site whose owner points its name at 127.0.0.1 is its own origin to a browser on
// the same machine, so the check against cross-origin writes would let its pages join and leave
// rooms here; its Host header names it. Behind a reverse proxy on the same machine that passes
// the Host header on, give the proxy's names with -hosts (or "*").
//
// # Metrics
//
// With -metrics-addr the server also serves GET /metrics, in the Prometheus text format, on a
// listener of its own: the member store's metrics (ephemeral_*, from the backend's observer,
// github.com/ephemeral-go/ephemeral/metrics/prom), the requests refused by the limits above
// (presence_rejections_total{reason}: conns, host, join_rate, streams, stream_rate, write_rate,
// room_full, too_large, slow_body),
// and the Go runtime's and the process's (go_*, process_*).
//
//	go run ./examples/presence -metrics-addr 127.0.0.1:9090   # curl 127.0.0.1:9090/metrics
//
// The same listener serves the Go profiles of net/http/pprof under /debug/pprof/, such as
// /debug/pprof/profile?seconds=30 (CPU) for go tool pprof.
//
// It is off by default and never on the public address: metrics tell anyone who can read them
// how busy the server is and how it fails, profiles tell more (the command line, the code), and
// each scrape or profile costs the server work. Bind it to loopback or a private interface that
// only the monitoring system reaches. Its requests too must arrive whole, body included, within
// 10 s, and its idle connections close after 30 s.
//
// The page is plain HTML, CSS and JavaScript embedded with go:embed; names are shown with
// textContent, never parsed as HTML. Writes are refused from other origins, and a member can
// only be touched, changed or removed by the page that joined it: it holds a token, an HMAC of
// the room and member ID under the secret key (PRESENCE_SECRET or -secret-file), or one the
// server makes at start. Its event stream's URL, which access logs, histories and Referer
// headers keep, carries a renewal token instead, an HMAC of another domain, which only lets a
// stream keep the member alive: heartbeats, status changes, leaves and joins refuse it. It
// expires five minutes after it was made, so a URL found in a log does not keep a crashed
// page's member alive for whoever finds it; the open stream and the heartbeats hand the page
// fresh ones.
//
// # Flags
//
// Each with its default; the per-client limits count a client by its IP address (see Limits):
//
//	-addr host:port          serve the app on host:port (127.0.0.1:8080)
//	-hosts names             answer only for these comma-separated Host names, "*" for any
//	                         (localhost and loopback addresses when -addr is one, else any)
//	-metrics-addr host:port  serve /metrics on host:port, apart from -addr (off)
//	-ttl d                   how long a member stays without a renewal (10s)
//	-redis host:port         keep the rooms on the Redis server at host:port (off: in memory)
//	-redis-pool n            most command connections to Redis (go-redis's: 10 per CPU)
//	-secret-file file        read the key that signs member tokens from file, or set
//	                         PRESENCE_SECRET; not both (a random key per process)
//	-room-size n             most members of a room (200)
//	-max-conns n             most connections open at once per client (32)
//	-max-streams n           most event streams open at once per client (8)
//	-stream-rate r           event streams opened per second per client (1)
//	-stream-burst n          event streams opened in a burst per client (16)
//	-join-rate r             joins per second per client (1)
//	-join-burst n            joins in a burst per client (5)
//	-write-rate r            heartbeats, status changes and leaves per second per client (4)
//	-write-burst n           heartbeats, status changes and leaves in a burst per client (20)
//
// # Load
//
// TestLoad drives the server with simulated pages that speak the page's protocol over HTTP and
// Server-Sent Events (page, stream, join, heartbeat while the stream is down, leave) and logs
// how long each step takes; docs/PERFORMANCE.md has its figures and commands, such as 200 rooms
// of 10 members on Redis:
//
//	go test ./examples/presence -run TestLoad -v -timeout 30m -load.rooms 200 -load.members 10 \
//		-load.ttl 10s -load.hold 30s -load.redis 127.0.0.1:6379
//
// With -load.servers and -load.part it drives servers of their own from several processes;
// loadrun.sh starts a redis-server, two servers on it and two driver processes that simulate
// 2,000 rooms of 10 members between them, prints their figures and stops them all:
//
//	examples/presence/loadrun.sh                # ROOMS=200 TTL=5s ... to change the run
//
// [ephemeral.Mirror]: https://pkg.go.dev/github.com/ephemeral-go/ephemeral#Mirror
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/metrics/prom"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen on `host:port`")
	hosts := flag.String("hosts", "", "answer only for these comma-separated Host `names` (\"*\": any; default: loopback names when -addr is a loopback address, else any)")
	metricsAddr := flag.String("metrics-addr", "", "serve /metrics (Prometheus) on `host:port`, apart from -addr; off when empty")
	ttl := flag.Duration("ttl", 10*time.Second, "how long a member stays without a renewal (by its open event stream, or a heartbeat)")
	redisAddr := flag.String("redis", "", "use the Redis server at `host:port` instead of memory")
	redisPool := flag.Int("redis-pool", 0, "most command connections to Redis (`n`; default: go-redis's, 10 per CPU)")
	secretFile := flag.String("secret-file", "", "read the key that signs member tokens from `file` (or set "+envSecret+"); give every process of a Redis deployment the same (default: random)")
	roomSize := flag.Int("room-size", 200, "most members of a room")
	limits := DefaultLimits
	flag.IntVar(&limits.Conns, "max-conns", limits.Conns, "most connections open at once per client address")
	flag.IntVar(&limits.Streams, "max-streams", limits.Streams, "most event streams open at once per client address")
	streamRate := flag.Float64("stream-rate", float64(limits.StreamRate), "event streams opened per second per client address")
	flag.IntVar(&limits.StreamBurst, "stream-burst", limits.StreamBurst, "event streams opened in a burst per client address")
	joinRate := flag.Float64("join-rate", float64(limits.JoinRate), "joins per second per client address")
	flag.IntVar(&limits.JoinBurst, "join-burst", limits.JoinBurst, "joins in a burst per client address")
	writeRate := flag.Float64("write-rate", float64(limits.WriteRate), "heartbeats, status changes and leaves per second per client address")
	flag.IntVar(&limits.WriteBurst, "write-burst", limits.WriteBurst, "heartbeats, status changes and leaves in a burst per client address")
	flag.Parse()
	limits.StreamRate, limits.JoinRate, limits.WriteRate = rate.Limit(*streamRate), rate.Limit(*joinRate), rate.Limit(*writeRate)
	secret, err := loadSecret(*secretFile, os.LookupEnv)
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *metricsAddr, redisConfig{*redisAddr, *redisPool}, secret, *ttl, *roomSize, limits, *hosts); err != nil {
		log.Fatal(err)
	}
}

// envSecret is the environment variable that may hold the key that signs member tokens.
const envSecret = "PRESENCE_SECRET"

// minSecret is the size of the shortest key that may sign member tokens, in bytes.
const minSecret = 16

// maxSecretFile is the size of the largest secret file, in bytes: a key needs far less, and a
// larger file is the wrong one.
const maxSecretFile = 4 << 10

// loadSecret returns the key that signs member tokens: the content of the file named by file
// (without the line ending that an editor adds), or the value of PRESENCE_SECRET as lookupEnv
// finds it, or nil when neither is set. It refuses both at once, which would leave one of them
// unused, and a key of fewer than minSecret bytes, an empty variable's among them.
func loadSecret(file string, lookupEnv func(string) (string, bool)) ([]byte, error) {
	env, inEnv := lookupEnv(envSecret)
	var secret []byte
	var from string
	switch {
	case file != "" && inEnv:
		return nil, fmt.Errorf("both -secret-file and %s are set: give the secret once", envSecret)
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("-secret-file: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
		switch {
		case err != nil:
			return nil, fmt.Errorf("-secret-file: %w", err)
		case len(b) > maxSecretFile:
			return nil, fmt.Errorf("-secret-file %s: more than %d bytes; a secret needs far fewer", file, maxSecretFile)
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		secret, from = bytes.TrimSuffix(b, []byte("\r")), "-secret-file "+file
	case inEnv:
		secret, from = []byte(env), envSecret
	default:
		return nil, nil
	}
	if len(secret) < minSecret {
		return nil, fmt.Errorf("%s: the secret has %d bytes, fewer than %d; make one with "+
			"head -c 24 /dev/urandom | base64", from, len(secret), minSecret)
	}
	return secret, nil
}

// redisConfig is the Redis server of -redis, and the size of the command pool to it.
type redisConfig struct {
	addr string // empty: the memory backend
	pool int    // 0: go-redis's default
}

// run serves the presence app on addr, and its metrics on metricsAddr unless it is empty, until
// ctx is done. It signs member tokens with secret, or with a random key when it is nil.
func run(ctx context.Context, addr, metricsAddr string, rc redisConfig, secret []byte, ttl time.Duration, roomSize int, limits Limits, hosts string) error {
	switch {
	case ttl < 3*time.Millisecond:
		return fmt.Errorf("-ttl %v is too short", ttl)
	case roomSize < 1:
		return fmt.Errorf("-room-size %d: want at least 1", roomSize)
	case limits.Conns < 1 || limits.Streams < 1 || limits.JoinRate <= 0 || limits.JoinBurst < 1:
		return fmt.Errorf("-max-conns, -max-streams, -join-rate and -join-burst must be positive")
	case rc.pool < 0:
		return fmt.Errorf("-redis-pool %d: want 0 (the default) or more", rc.pool)
	}
	obs := prom.New()
	backend, closeBackend, err := openBackend(ctx, rc, obs)
	if err != nil {
		return err
	}
	defer closeBackend()
	store, err := NewMemberStore(backend, ephemeral.WithDefaultTTL(ttl), ephemeral.WithLimits(ephemeral.Limits{MaxEntries: roomSize}))
	if err != nil {
		return err
	}
	obs.Init(store.ID())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := newServer(store, ttl, limits)
	sln, err := srv.listen(ln, hosts)
	if err != nil {
		ln.Close()
		return err
	}
	log.Printf("presence: open http://%s/ in two tabs (member ttl %v)", ln.Addr(), ttl)
	ln = sln
	if secret != nil {
		srv.secret = secret
	} else if rc.addr != "" {
		log.Printf("presence: member tokens are signed with a random key of this process: set %s "+
			"or -secret-file alike for every process on the Redis server", envSecret)
	}
	if metricsAddr == "" {
		return serve(ctx, ln, srv, appTimeouts)
	}
	mln, err := net.Listen("tcp", metricsAddr)
	if err != nil {
		ln.Close()
		return err
	}
	log.Printf("presence: metrics at http://%s/metrics", mln.Addr())
	// Both servers run until ctx is done or one of them fails, which stops the other.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- serve(ctx, mln, metricsHandler(obs, srv), metricsTimeouts) }()
	go func() { errc <- serve(ctx, ln, srv, appTimeouts) }()
	err = <-errc
	cancel()
	return errors.Join(err, <-errc)
}

// metricsHandler serves GET /metrics: the store's metrics as obs counts them, the server's
// rejections, and the Go runtime's and the process's metrics. It serves net/http/pprof's
// profiles under /debug/pprof/ too (go tool pprof http://host:port/debug/pprof/profile), on
// this mux only: the package's init registers them on http.DefaultServeMux as well, which
// nothing serves.
func metricsHandler(obs *prom.Observer, s *server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(obs, s.rejected, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // the index, and the named profiles
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// openBackend returns the memory backend, or the Redis backend when rc.addr is set, reporting
// to obs, and the function that closes it.
func openBackend(ctx context.Context, rc redisConfig, obs *prom.Observer) (ephemeral.Backend, func(), error) {
	if rc.addr == "" {
		b := memstore.New(memstore.WithObserver(obs))
		return b, func() { b.Close() }, nil
	}
	client := redis.NewClient(&redis.Options{Addr: rc.addr, PoolSize: rc.pool})
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("redis at %s: %w", rc.addr, err)
	}
	b := redisstore.New(client, redisstore.WithObserver(obs))
	return b, func() {
		b.Close()
		client.Close()
	}, nil
}

// idleTimeout is how long a keep-alive connection may wait for its next request.
const idleTimeout = 30 * time.Second

// timeouts are the deadlines of a server's connections; a zero one is not set.
type timeouts struct {
	idle time.Duration // a keep-alive connection's wait for its next request
	// read bounds the whole of a request, its body included, from the start of its header.
	read time.Duration
	// write bounds the writing of an answer, from the end of the request's header, so that a
	// client that never reads its answers does not hold a connection and a goroutine.
	write time.Duration
}

// appTimeouts are those of the app's address. It sets no read timeout, which would end every
// event stream after it (net/http's background read fails, and cancels the request): the
// app bounds the reading of a body itself (see server.ServeHTTP). An event stream moves its
// connection's write deadline on as it writes (see sseWriter.flush), so the write timeout
// cuts off an answer that stalls, never a stream that is quiet.
var appTimeouts = timeouts{idle: idleTimeout, write: writeTimeout}

// metricsTimeouts are those of the metrics address. A request must arrive whole within the
// read timeout: net/http reads what is left of a body its handler did not read (up to
// 256 KB) before it writes the answer, and would wait for ever for one sent a byte at a time.
// No write timeout: the address is private, and a profile (net/http/pprof) answers only after
// the seconds it samples, which it refuses beyond the server's write timeout.
var metricsTimeouts = timeouts{idle: idleTimeout, read: 10 * time.Second}

// serve serves h on ln with the deadlines of t, until ctx is done, then shuts the server down:
// it stops accepting connections, ends the event streams (their request contexts are
// cancelled) and waits up to five seconds for the other requests.
func serve(ctx context.Context, ln net.Listener, h http.Handler, t timeouts) error {
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	srv.RegisterOnShutdown(cancel) // event streams never go idle: end them
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	err := srv.Shutdown(sctx)
	<-errc // http.ErrServerClosed
	return err
}
