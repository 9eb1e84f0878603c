package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/internal/redistest"
	"github.com/ephemeral-go/ephemeral/metrics/prom"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/ephemeral-go/ephemeral/runtime/redisstore"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// app is the presence server running in-process on a memory backend.
type app struct {
	url     string
	metrics string // the URL of /metrics on the metrics server, with appConfig.metrics
	store   *MemberStore
	backend ephemeral.Backend
	srv     *server
	stop    func() error // shuts the server down and returns what serve returned
}

// appConfig configures a test's app; zero fields mean the defaults.
type appConfig struct {
	ttl    time.Duration    // of members; required
	clock  memstore.Clock   // the backend's clock; nil means the system clock
	limits ephemeral.Limits // of the member store
	ping   time.Duration    // how long an event stream may be silent
	// now, when set, is the clock of renewal tokens; else clock's, or the system clock.
	now func() time.Time
	// heartbeat, when set, is how often pages beat and streams renew their members, on the
	// wall clock (the default: a third of ttl).
	heartbeat time.Duration
	redis     string // host:port of a Redis server to use instead of memory
	guard     Limits // per client; the zero Limits means generous ones
	// timeouts of the app's HTTP server; a zero one is appTimeouts'.
	timeouts timeouts
	// metricsTimeouts of the metrics server; a zero one is metricsTimeouts'.
	metricsTimeouts timeouts
	// listener, when set, wraps the app's listener, for a test that watches its connections.
	listener func(net.Listener) net.Listener
	// backend, when set, is another app's: the app shares its state, as processes on one
	// Redis do (give them the same secret).
	backend ephemeral.Backend
	secret  []byte // signs member tokens; nil means a random one
	hosts   string // the -hosts flag: "" answers loopback names only, as the app is on 127.0.0.1
	// metrics starts the metrics server too, on an address of its own, as -metrics-addr does.
	metrics bool
}

// startApp serves the app on 127.0.0.1, on a memory backend unless cfg.redis is set. The
// test's cleanup shuts it down through serve's shutdown path and checks that it returned
// cleanly.
func startApp(t *testing.T, cfg appConfig) *app {
	t.Helper()
	obs := prom.New()
	backend := cfg.backend
	if backend == nil {
		backend = newBackend(t, cfg, obs)
	}
	store, err := NewMemberStore(backend, ephemeral.WithDefaultTTL(cfg.ttl), ephemeral.WithLimits(cfg.limits))
	if err != nil {
		t.Fatal(err)
	}
	obs.Init(store.ID())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if cfg.guard == (Limits{}) {
		cfg.guard = Unlimited // the tests join a lot
	}
	a := &app{url: "http://" + ln.Addr().String(), store: store, backend: backend, srv: newServer(store, cfg.ttl, cfg.guard)}
	if cfg.ping > 0 {
		a.srv.ping = cfg.ping
	}
	switch {
	case cfg.now != nil:
		a.srv.now = cfg.now
	case cfg.clock != nil:
		a.srv.now = cfg.clock.Now // renewal tokens expire on the backend's clock
	}
	if cfg.heartbeat > 0 {
		a.srv.heartbeat = cfg.heartbeat
	}
	if cfg.secret != nil {
		a.srv.secret = cfg.secret
	}
	done := make(chan error, 2)
	if ln, err = a.srv.listen(ln, cfg.hosts); err != nil {
		t.Fatal(err)
	}
	if cfg.listener != nil {
		ln = cfg.listener(ln)
	}
	go func() { done <- serve(ctx, ln, a.srv, cfg.timeouts.or(appTimeouts)) }()
	servers := 1
	if cfg.metrics {
		mln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a.metrics = "http://" + mln.Addr().String() + "/metrics"
		go func() { done <- serve(ctx, mln, metricsHandler(obs, a.srv), cfg.metricsTimeouts.or(metricsTimeouts)) }()
		servers++
	}
	a.stop = sync.OnceValue(func() error {
		cancel()
		var err error
		for range servers {
			err = errors.Join(err, <-done)
		}
		return err
	})
	t.Cleanup(func() {
		if err := a.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return a
}

// or returns t with each zero timeout replaced by that of d.
func (t timeouts) or(d timeouts) timeouts {
	if t.idle == 0 {
		t.idle = d.idle
	}
	if t.read == 0 {
		t.read = d.read
	}
	if t.write == 0 {
		t.write = d.write
	}
	return t
}

// newBackend returns the backend of a test app, reporting to obs; the test's cleanup closes it.
func newBackend(t *testing.T, cfg appConfig, obs *prom.Observer) ephemeral.Backend {
	if cfg.redis == "" {
		opts := []memstore.Option{memstore.WithObserver(obs)}
		if cfg.clock != nil {
			opts = append(opts, memstore.WithClock(cfg.clock))
		}
		b := memstore.New(opts...)
		t.Cleanup(func() { b.Close() })
		return b
	}
	// A key prefix of the test's own, whose keys are deleted afterwards: the server may be
	// shared, and is never flushed.
	client := redis.NewClient(&redis.Options{Addr: cfg.redis})
	prefix := redistest.Prefix("presence-test")
	b := redisstore.New(client, redisstore.WithKeyPrefix(prefix), redisstore.WithObserver(obs))
	t.Cleanup(func() {
		b.Close()
		if _, err := redistest.DeleteKeys(context.Background(), client, prefix); err != nil {
			t.Errorf("delete the test's keys: %v", err)
		}
		client.Close()
	})
	return b
}

// eventLog reads the store's events of one room, as a test's witness of what the pages did.
type eventLog struct {
	r     *ephemeral.Reader[string, Member]
	names map[string]string // member id -> name, from upserts
}

func (a *app) reader(t *testing.T, room string) *eventLog {
	t.Helper()
	r, err := a.store.Reader(context.Background(), ephemeral.WithTenant(room))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &eventLog{r: r, names: map[string]string{}}
}

// expect reads events until one of kind for the member called name, and returns it. Events
// of other kinds or members are skipped.
func (l *eventLog) expect(t *testing.T, kind ephemeral.EventKind, name string) ephemeral.Event[string, Member] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		ev, err := l.r.Recv(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("no %s event for %s", kind, name)
		}
		if err != nil {
			t.Fatalf("read events: %v", err)
		}
		if ev.Kind == ephemeral.EventUpsert {
			l.names[ev.Key] = ev.Value.Name
		}
		if ev.Kind == kind && l.names[ev.Key] == name {
			return ev
		}
	}
}

// TestLoadSecret checks where the key that signs member tokens comes from: a file, or
// PRESENCE_SECRET, never both, of at least 16 bytes (without the file's line ending); and nil
// without either, for a random key.
func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const key = "0123456789abcdef" // 16 bytes
	good := file("good", key+"\n")
	for _, c := range []struct {
		name      string
		file      string
		env       *string // nil: not set
		want      string  // the key, or what the error says
		wantError bool
	}{
		{name: "neither", want: ""},
		{name: "environment", env: new(key), want: key},
		{name: "file", file: good, want: key},
		{name: "file with CRLF", file: file("crlf", key+"\r\n"), want: key},
		{name: "file without newline", file: file("bare", key+"!"), want: key + "!"},
		{name: "both", file: good, env: new(key), want: "both -secret-file and PRESENCE_SECRET", wantError: true},
		{name: "empty environment", env: new(""), want: "0 bytes, fewer than 16", wantError: true},
		{name: "short environment", env: new(key[1:]), want: "PRESENCE_SECRET: the secret has 15 bytes", wantError: true},
		{name: "short file", file: file("short", key[1:]+"\n"), want: "the secret has 15 bytes", wantError: true},
		{name: "no file", file: filepath.Join(dir, "missing"), want: "no such file", wantError: true},
		{name: "huge file", file: file("huge", strings.Repeat("k", 1<<20)), want: "more than 4096 bytes", wantError: true},
	} {
		lookup := func(name string) (string, bool) {
			if name != envSecret || c.env == nil {
				return "", false
			}
			return *c.env, true
		}
		got, err := loadSecret(c.file, lookup)
		switch {
		case c.wantError && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %q, %v; want an error saying %q", c.name, got, err, c.want)
		case !c.wantError && (err != nil || string(got) != c.want || (got == nil) != (c.want == "")):
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

// TestFlagsDocumented checks that the package doc's list of flags has every flag that main
// defines, and no other.
func TestFlagsDocumented(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`flag\.\w+\((?:&[\w.]+, )?"([a-z-]+)"`).FindAllSubmatch(src, -1) {
		defined[string(m[1])] = true
	}
	_, section, ok := strings.Cut(string(src), "\n// # Flags\n")
	section, _, _ = strings.Cut(section, "\n// #")
	if !ok || len(defined) < 10 {
		t.Fatalf("no # Flags section in the package doc, or %d flags found in main", len(defined))
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^//\t-([a-z-]+) `).FindAllStringSubmatch(section, -1) {
		documented[m[1]] = true
	}
	for name := range defined {
		if !documented[name] {
			t.Errorf("flag -%s is not in the package doc's # Flags", name)
		}
	}
	for name := range documented {
		if !defined[name] {
			t.Errorf("the package doc's # Flags has -%s, which main does not define", name)
		}
	}
}
