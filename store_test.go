package ephemeral_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/google/go-cmp/cmp"
)

// text is the value type of these tests; textCodec stores it verbatim, refuses to decode
// "bad" and to encode "unencodable".
type text struct{ S string }

type textCodec struct{}

var errUnencodable = errors.New("unencodable value")

func (textCodec) Encode(dst []byte, v *text) ([]byte, error) {
	if v.S == "unencodable" {
		return dst, errUnencodable
	}
	return append(dst, v.S...), nil
}

func (textCodec) Decode(src []byte, v *text) error {
	if string(src) == "bad" {
		return errors.New("bad value")
	}
	v.S = string(src)
	return nil
}

// opened is one call of recorder.Open.
type opened struct {
	id     string
	limits backend.Limits
}

// recorder is a Backend that records what reaches it. Open returns the recorder itself as the
// backend.Store of every ID.
type recorder struct {
	mu      sync.Mutex
	opens   []opened
	calls   []string // "op tenant"
	upserts []backend.UpsertRequest
	touches []backend.TouchRequest
	manys   []backend.TouchManyRequest
	removes []backend.RemoveRequest
	// snapshotKeys, when set, are the keys of the entries Snapshot returns, instead of
	// prefix+"a" and prefix+"b".
	snapshotKeys []string
	events       chan backend.Event
}

func newRecorder() *recorder { return &recorder{events: make(chan backend.Event, 10)} }

func (r *recorder) Open(id string, l backend.Limits) (backend.Store, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opens = append(r.opens, opened{id, l})
	return r, nil
}

// Close does nothing: a recorder holds nothing to release.
func (r *recorder) Close() error { return nil }

func (r *recorder) note(op, tenant string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, op+" "+tenant)
}

// seen returns the calls recorded so far.
func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func (r *recorder) Upsert(_ context.Context, tenant string, req backend.UpsertRequest) (backend.Entry, error) {
	r.note("upsert", tenant)
	r.mu.Lock()
	r.upserts = append(r.upserts, req)
	r.mu.Unlock()
	return backend.Entry{Key: req.Key, Value: req.Value, Version: 7, CreatedAt: 1000, UpdatedAt: 2000, ExpiresAt: 3000}, nil
}

func (r *recorder) Touch(_ context.Context, tenant string, req backend.TouchRequest) (backend.TouchResult, error) {
	r.note("touch", tenant)
	r.mu.Lock()
	r.touches = append(r.touches, req)
	r.mu.Unlock()
	if req.Key == "missing" {
		return backend.TouchResult{}, nil
	}
	return backend.TouchResult{OK: true, Version: 8, ExpiresAt: 4000}, nil
}

func (r *recorder) TouchMany(_ context.Context, tenant string, req backend.TouchManyRequest) ([]backend.TouchResult, error) {
	r.note("touchmany", tenant)
	r.mu.Lock()
	r.manys = append(r.manys, req)
	r.mu.Unlock()
	res := make([]backend.TouchResult, len(req.Keys))
	for i, k := range req.Keys {
		if k != "missing" {
			res[i] = backend.TouchResult{OK: true, Version: uint64(10 + i), ExpiresAt: 5000}
		}
	}
	return res, nil
}

func (r *recorder) Remove(_ context.Context, tenant string, req backend.RemoveRequest) (bool, error) {
	r.note("remove", tenant)
	r.mu.Lock()
	r.removes = append(r.removes, req)
	r.mu.Unlock()
	return true, nil
}

func (r *recorder) Get(_ context.Context, tenant, key string) (backend.Entry, bool, error) {
	r.note("get", tenant)
	if key == "missing" {
		return backend.Entry{}, false, nil
	}
	return backend.Entry{Key: key, Value: []byte(key), Version: 3}, true, nil
}

func (r *recorder) Snapshot(_ context.Context, tenant, prefix string) (backend.Snapshot, error) {
	r.note("snapshot", tenant)
	keys := r.snapshotKeys
	if keys == nil {
		keys = []string{prefix + "a", prefix + "b"}
	}
	snap := backend.Snapshot{Cursor: backend.Cursor{Epoch: "e", Seq: 9}}
	for i, k := range keys {
		v := []byte{'1' + byte(i)}
		if strings.HasSuffix(k, "bad") {
			v = []byte("bad")
		}
		snap.Entries = append(snap.Entries, backend.Entry{Key: k, Value: v, Version: uint64(i + 1)})
	}
	return snap, nil
}

func (r *recorder) Subscribe(_ context.Context, tenant string, req backend.SubscribeRequest) (backend.Subscription, error) {
	r.note("subscribe", tenant)
	start := backend.Cursor{Epoch: "e", Seq: 5}
	if req.After != nil {
		start = *req.After
	}
	return &sub{start: start, events: r.events, done: make(chan struct{})}, nil
}

type sub struct {
	start  backend.Cursor
	events chan backend.Event
	once   sync.Once
	done   chan struct{}
}

func (s *sub) Start() backend.Cursor { return s.start }

func (s *sub) Next(ctx context.Context) (*backend.Event, error) {
	select {
	case <-s.done:
		return nil, backend.ErrClosed
	default:
	}
	select {
	case ev := <-s.events:
		return &ev, nil
	case <-s.done:
		return nil, backend.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *sub) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

// textConfig returns the Config of a store of text values under plain string keys.
func textConfig(id string, ttl time.Duration) ephemeral.Config[string, text] {
	return ephemeral.Config[string, text]{ID: id, TTL: ttl, Codec: textCodec{}}
}

func newStore(t *testing.T, cfg ephemeral.Config[string, text], opts ...ephemeral.StoreOption) (*ephemeral.Store[string, text], *recorder) {
	t.Helper()
	rec := newRecorder()
	s, err := ephemeral.New(rec, cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, rec
}

func TestNewValidatesConfig(t *testing.T) {
	withLimits := func(l ephemeral.Limits) ephemeral.Config[string, text] {
		cfg := textConfig("id", time.Second)
		cfg.Limits = l
		return cfg
	}
	withTenant := textConfig("id", time.Second)
	withTenant.Tenant = strings.Repeat("t", ephemeral.MaxTenantBytes+1)
	noCodec := textConfig("id", time.Second)
	noCodec.Codec = nil
	halfKeys := textConfig("id", time.Second)
	halfKeys.Key = ephemeral.KeyCodec[string]{Format: strings.ToUpper}
	for _, tc := range []struct {
		name string
		cfg  ephemeral.Config[string, text]
		opts []ephemeral.StoreOption
		want error
	}{
		{"empty id", textConfig("", time.Second), nil, ephemeral.ErrInvalidID},
		{"long id", textConfig(strings.Repeat("i", ephemeral.MaxIDBytes+1), time.Second), nil, ephemeral.ErrInvalidID},
		{"id not UTF-8", textConfig("s\xff", time.Second), nil, ephemeral.ErrInvalidID},
		{"zero ttl", textConfig("id", 0), nil, ephemeral.ErrInvalidTTL},
		{"negative ttl", textConfig("id", -time.Second), nil, ephemeral.ErrInvalidTTL},
		{"negative ttl option", textConfig("id", time.Second), []ephemeral.StoreOption{ephemeral.WithDefaultTTL(-1)}, ephemeral.ErrInvalidTTL},
		{"long tenant", withTenant, nil, ephemeral.ErrInvalidTenant},
		{"long tenant option", textConfig("id", time.Second), []ephemeral.StoreOption{ephemeral.WithDefaultTenant(strings.Repeat("t", ephemeral.MaxTenantBytes+1))}, ephemeral.ErrInvalidTenant},
		{"empty tenant option", textConfig("id", time.Second), []ephemeral.StoreOption{ephemeral.WithDefaultTenant("")}, ephemeral.ErrInvalidTenant},
		{"no codec", noCodec, nil, ephemeral.ErrInvalidConfig},
		{"half a key codec", halfKeys, nil, ephemeral.ErrInvalidConfig},
		{"negative MaxEntries", withLimits(ephemeral.Limits{MaxEntries: -1}), nil, ephemeral.ErrInvalidConfig},
		{"negative MaxPayloadBytes", withLimits(ephemeral.Limits{MaxPayloadBytes: -1}), nil, ephemeral.ErrInvalidConfig},
		{"negative EventRetention", withLimits(ephemeral.Limits{EventRetention: -time.Second}), nil, ephemeral.ErrInvalidConfig},
		{"negative MaxEvents", withLimits(ephemeral.Limits{MaxEvents: -1}), nil, ephemeral.ErrInvalidConfig},
		{"negative limit option", textConfig("id", time.Second), []ephemeral.StoreOption{ephemeral.WithLimits(ephemeral.Limits{MaxEvents: -1})}, ephemeral.ErrInvalidConfig},
	} {
		rec := newRecorder()
		if s, err := ephemeral.New(rec, tc.cfg, tc.opts...); !errors.Is(err, tc.want) || s != nil {
			t.Errorf("%s: New = %v, %v; want nil, %v", tc.name, s, err, tc.want)
		}
		if len(rec.opens) != 0 {
			t.Errorf("%s: the backend opened %+v", tc.name, rec.opens)
		}
	}
	if _, err := ephemeral.New(nil, textConfig("id", time.Second)); !errors.Is(err, ephemeral.ErrInvalidConfig) {
		t.Errorf("nil backend: New = %v, want ErrInvalidConfig", err)
	}
}

// TestNewKeyCodec checks that a store of plain string keys needs no KeyCodec and that a store
// of any other key type does.
func TestNewKeyCodec(t *testing.T) {
	ctx := context.Background()
	s, rec := newStore(t, textConfig("id", time.Second)) // zero KeyCodec: StringKeys
	if got := s.KeyString("a:b%"); got != "a:b%" {
		t.Errorf("KeyString = %q, want the key as it is", got)
	}
	if _, err := s.Upsert(ctx, "a:b%", text{"v"}); err != nil || rec.upserts[0].Key != "a:b%" {
		t.Errorf("Upsert = %v; request %+v", err, rec.upserts)
	}
	rec.snapshotKeys = []string{"x:%"}
	if snap, err := s.Snapshot(ctx); err != nil || len(snap.Entries) != 1 || snap.Entries[0].Key != "x:%" {
		t.Errorf("Snapshot = %+v, %v", snap, err)
	}

	type userID string // a named string type is not string: it needs a KeyCodec
	_, err := ephemeral.New(newRecorder(), ephemeral.Config[userID, text]{ID: "id", TTL: time.Second, Codec: textCodec{}})
	if !errors.Is(err, ephemeral.ErrInvalidConfig) {
		t.Errorf("New with keys of type userID and no KeyCodec = %v, want ErrInvalidConfig", err)
	}
	_, err = ephemeral.New(newRecorder(), ephemeral.Config[seat, text]{ID: "id", TTL: time.Second, Codec: textCodec{}})
	if !errors.Is(err, ephemeral.ErrInvalidConfig) {
		t.Errorf("New with keys of type seat and no KeyCodec = %v, want ErrInvalidConfig", err)
	}
	if _, err := ephemeral.New(newRecorder(), ephemeral.Config[seat, text]{ID: "id", TTL: time.Second, Codec: textCodec{}, Key: seatKeys}); err != nil {
		t.Errorf("New with keys of type seat and their KeyCodec = %v", err)
	}
}

func TestStoreSettings(t *testing.T) {
	s, rec := newStore(t, textConfig("id", 1500*time.Microsecond))
	defaults := ephemeral.Limits{MaxEntries: 10_000, MaxPayloadBytes: 4_096, EventRetention: 5 * time.Minute, MaxEvents: 50_000}
	if s.ID() != "id" || s.DefaultTTL() != 2*time.Millisecond || s.DefaultTenant() != ephemeral.DefaultTenant || s.Limits() != defaults {
		t.Errorf("ID %q, DefaultTTL %v, DefaultTenant %q, Limits %+v", s.ID(), s.DefaultTTL(), s.DefaultTenant(), s.Limits())
	}
	if ephemeral.DefaultTenant != "default" {
		t.Errorf("DefaultTenant = %q", ephemeral.DefaultTenant)
	}
	// The backend opens the ID with the limits, defaults filled in.
	if len(rec.opens) != 1 || rec.opens[0] != (opened{"id", defaults}) {
		t.Errorf("opens = %+v", rec.opens)
	}

	cfg := textConfig("id", time.Second)
	cfg.Tenant = "cfg"
	cfg.Limits = ephemeral.Limits{MaxEntries: 5, EventRetention: 1500 * time.Microsecond}
	s, rec = newStore(t, cfg)
	if s.DefaultTenant() != "cfg" || s.Limits().MaxEntries != 5 || s.Limits().EventRetention != 2*time.Millisecond {
		t.Errorf("Config not applied: tenant %q, limits %+v", s.DefaultTenant(), s.Limits())
	}
	if rec.opens[0].limits != s.Limits() {
		t.Errorf("opened with %+v, the store has %+v", rec.opens[0].limits, s.Limits())
	}

	s, _ = newStore(t, cfg, ephemeral.WithDefaultTTL(time.Minute), ephemeral.WithDefaultTenant("t"), ephemeral.WithLimits(ephemeral.Limits{MaxEntries: 3}))
	if s.DefaultTTL() != time.Minute || s.DefaultTenant() != "t" || s.Limits().MaxEntries != 3 || s.Limits().MaxEvents != 50_000 {
		t.Errorf("options not applied: %v %q %+v", s.DefaultTTL(), s.DefaultTenant(), s.Limits())
	}
}

// TestEmptyTenant checks that WithTenant("") and WithDefaultTenant("") are errors, never the
// default tenant, and that Config.Tenant "" is the default tenant.
func TestEmptyTenant(t *testing.T) {
	ctx := context.Background()
	s, rec := newStore(t, textConfig("id", time.Second))
	empty := ephemeral.WithTenant("")
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	_, err := s.Upsert(ctx, "k", text{"v"}, empty)
	add(err)
	_, err = s.Touch(ctx, "k", empty)
	add(err)
	_, err = s.TouchMany(ctx, []string{"k"}, empty)
	add(err)
	_, err = s.Remove(ctx, "k", empty)
	add(err)
	_, _, err = s.Get(ctx, "k", empty)
	add(err)
	_, err = s.Snapshot(ctx, empty)
	add(err)
	_, err = s.Reader(ctx, empty)
	add(err)
	m, err := s.Mirror(nil, empty)
	add(err)
	if m != nil {
		m.Close()
		t.Error("Mirror with an empty tenant returned a mirror")
	}
	for i, err := range errs {
		if !errors.Is(err, ephemeral.ErrInvalidTenant) {
			t.Errorf("call %d with WithTenant(\"\"): err = %v, want ErrInvalidTenant", i, err)
		} else if want := `ephemeral: invalid tenant: empty (want 1 to 256 bytes); "" is not the default tenant: leave the option out for that`; err.Error() != want {
			t.Errorf("call %d with WithTenant(\"\"): err = %v, want %s", i, err, want)
		}
	}
	if calls := rec.seen(); len(calls) != 0 {
		t.Errorf("the backend saw %q", calls)
	}

	rec = newRecorder()
	if _, err := ephemeral.New(rec, textConfig("id", time.Second), ephemeral.WithDefaultTenant("")); !errors.Is(err, ephemeral.ErrInvalidTenant) {
		t.Errorf("New with WithDefaultTenant(\"\") = %v, want ErrInvalidTenant", err)
	}
	if len(rec.opens) != 0 {
		t.Errorf("New with WithDefaultTenant(\"\") opened %+v", rec.opens)
	}

	// Config.Tenant "" is the default tenant; WithTenant and WithDefaultTenant choose others.
	s, rec = newStore(t, textConfig("id", time.Second), ephemeral.WithDefaultTenant("d"))
	if _, err := s.Upsert(ctx, "k", text{"v"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Upsert(ctx, "k", text{"v"}, ephemeral.WithTenant("t")); err != nil {
		t.Fatal(err)
	}
	s, rec2 := newStore(t, textConfig("id", time.Second))
	if _, _, err := s.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if got := append(rec.seen(), rec2.seen()...); strings.Join(got, ",") != "upsert d,upsert t,get default" {
		t.Errorf("calls = %q", got)
	}
}

// TestRejectedCallsReachNoBackend checks that every invalid call fails with its sentinel and
// that the backend never sees it.
func TestRejectedCallsReachNoBackend(t *testing.T) {
	ctx := context.Background()
	cfg := textConfig("id", time.Second)
	cfg.Limits.MaxPayloadBytes = 4
	s, rec := newStore(t, cfg)
	long := strings.Repeat("k", ephemeral.MaxKeyBytes+1)
	longTenant := ephemeral.WithTenant(strings.Repeat("t", ephemeral.MaxTenantBytes+1))
	type check struct {
		name string
		err  error
		want error
	}
	var checks []check
	add := func(name string, err error, want error) { checks = append(checks, check{name, err, want}) }
	_, err := s.Upsert(ctx, "", text{"v"})
	add("upsert empty key", err, ephemeral.ErrInvalidKey)
	_, err = s.Upsert(ctx, long, text{"v"})
	add("upsert long key", err, ephemeral.ErrInvalidKey)
	_, err = s.Upsert(ctx, "k", text{"v"}, longTenant)
	add("upsert long tenant", err, ephemeral.ErrInvalidTenant)
	_, err = s.Upsert(ctx, "k", text{"v"}, ephemeral.WithTTL(0))
	add("upsert zero ttl", err, ephemeral.ErrInvalidTTL)
	_, err = s.Upsert(ctx, "k", text{"12345"})
	add("upsert payload", err, ephemeral.ErrPayloadTooLarge)
	_, err = s.Upsert(ctx, "k", text{"v"}, ephemeral.IfNew(), ephemeral.IfExists())
	add("upsert two conditions", err, ephemeral.ErrInvalidConfig)
	_, err = s.Upsert(ctx, "k", text{"unencodable"})
	add("upsert unencodable", err, errUnencodable)
	add("upsert unencodable", err, ephemeral.ErrEncode)
	_, err = s.Put(ctx, text{"v"})
	add("put without KeyOf", err, ephemeral.ErrInvalidConfig)
	_, err = s.Touch(ctx, "")
	add("touch empty key", err, ephemeral.ErrInvalidKey)
	_, err = s.Touch(ctx, "k", ephemeral.WithTTL(-time.Second))
	add("touch negative ttl", err, ephemeral.ErrInvalidTTL)
	_, err = s.Touch(ctx, "k", longTenant)
	add("touch long tenant", err, ephemeral.ErrInvalidTenant)
	_, err = s.TouchMany(ctx, []string{"a", "", "b"})
	add("touch many, an empty key", err, ephemeral.ErrInvalidKey)
	if err != nil && !strings.HasPrefix(err.Error(), "key 1: ") {
		t.Errorf("TouchMany with an empty key second: %v, want it named as key 1", err)
	}
	_, err = s.TouchMany(ctx, []string{"a", long})
	add("touch many, a long key", err, ephemeral.ErrInvalidKey)
	_, err = s.TouchMany(ctx, []string{"a"}, ephemeral.WithTTL(0))
	add("touch many, zero ttl", err, ephemeral.ErrInvalidTTL)
	_, err = s.TouchMany(ctx, []string{"a"}, longTenant)
	add("touch many, long tenant", err, ephemeral.ErrInvalidTenant)
	_, err = s.TouchMany(ctx, []string{"a"}, ephemeral.IfVersion(1))
	add("touch many IfVersion", err, ephemeral.ErrInvalidConfig)
	_, err = s.TouchMany(ctx, []string{"a"}, ephemeral.IfCursor("nonsense"))
	add("touch many IfCursor, an invalid cursor", err, ephemeral.ErrInvalidCursor)
	_, err = s.TouchMany(ctx, []string{"a"}, ephemeral.IfCursor("0000018f3a2b4c5d-1"))
	add("touch many IfCursor, a valid cursor", err, ephemeral.ErrInvalidConfig)
	_, err = s.Touch(ctx, "k", ephemeral.IfVersion(1), ephemeral.IfVersion(2))
	add("touch two conditions", err, ephemeral.ErrInvalidConfig)
	_, err = s.Remove(ctx, long)
	add("remove long key", err, ephemeral.ErrInvalidKey)
	_, err = s.Remove(ctx, "k", ephemeral.WithReason(strings.Repeat("r", ephemeral.MaxReasonBytes+1)))
	add("remove long reason", err, ephemeral.ErrPayloadTooLarge)
	_, err = s.Remove(ctx, "k", longTenant)
	add("remove long tenant", err, ephemeral.ErrInvalidTenant)
	_, err = s.Remove(ctx, "k", ephemeral.IfVersion(1), ephemeral.IfVersion(2))
	add("remove two conditions", err, ephemeral.ErrInvalidConfig)
	_, _, err = s.Get(ctx, "")
	add("get empty key", err, ephemeral.ErrInvalidKey)
	_, _, err = s.Get(ctx, "k", longTenant)
	add("get long tenant", err, ephemeral.ErrInvalidTenant)
	_, err = s.Snapshot(ctx, longTenant)
	add("snapshot long tenant", err, ephemeral.ErrInvalidTenant)
	_, err = s.Reader(ctx, ephemeral.After("nonsense"))
	add("reader bad cursor", err, ephemeral.ErrInvalidCursor)
	_, err = s.Reader(ctx, ephemeral.After(strings.Repeat("x", 1<<20)))
	add("reader cursor of a megabyte", err, ephemeral.ErrInvalidCursor)
	if n := len(err.Error()); n > 200 {
		t.Errorf("the error about a cursor of a megabyte has %d bytes", n)
	}
	_, err = s.Reader(ctx, longTenant)
	add("reader long tenant", err, ephemeral.ErrInvalidTenant)
	_, err = s.Mirror(nil, longTenant)
	add("mirror long tenant", err, ephemeral.ErrInvalidTenant)
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, c.err, c.want)
		}
	}
	if calls := rec.seen(); len(calls) != 0 {
		t.Errorf("backend saw %q", calls)
	}
}

func TestOptionsReachBackend(t *testing.T) {
	ctx := context.Background()
	s, rec := newStore(t, textConfig("id", time.Second))
	e, err := s.Upsert(ctx, "k", text{"v"}, ephemeral.WithTenant("t1"), ephemeral.WithTTL(time.Nanosecond), ephemeral.IfVersion(4))
	if err != nil || e.Key != "k" || e.Value.S != "v" || e.Version != 7 {
		t.Fatalf("Upsert = %+v, %v", e, err)
	}
	if !e.CreatedAt.Equal(time.UnixMilli(1000)) || !e.UpdatedAt.Equal(time.UnixMilli(2000)) || !e.ExpiresAt.Equal(time.UnixMilli(3000)) || e.ExpiresAt.Location() != time.UTC {
		t.Errorf("Upsert times: %v %v %v", e.CreatedAt, e.UpdatedAt, e.ExpiresAt)
	}
	if r := rec.upserts[0]; r.TTL != time.Millisecond || string(r.Value) != "v" || r.Cond != (backend.Condition{Kind: backend.CondIfVersion, Version: 4}) {
		t.Errorf("upsert request %+v", r)
	}
	if _, err := s.Upsert(ctx, "k", text{"v"}, ephemeral.IfNew()); err != nil || rec.upserts[1].Cond.Kind != backend.CondIfNew {
		t.Errorf("IfNew: %v %+v", err, rec.upserts[1])
	}
	if _, err := s.Upsert(ctx, "k", text{"v"}, ephemeral.IfExists()); err != nil || rec.upserts[2].Cond.Kind != backend.CondIfExists {
		t.Errorf("IfExists: %v %+v", err, rec.upserts[2])
	}
	res, err := s.Touch(ctx, "k", ephemeral.Quiet(), ephemeral.IfVersion(2), ephemeral.WithTenant("t2"))
	if err != nil || res != (ephemeral.TouchResult{OK: true, Version: 8, ExpiresAt: time.UnixMilli(4000).UTC()}) {
		t.Fatalf("Touch = %+v, %v", res, err)
	}
	if r := rec.touches[0]; !r.Quiet || r.TTL != time.Second || r.Cond != (backend.Condition{Kind: backend.CondIfVersion, Version: 2}) {
		t.Errorf("touch request %+v", r)
	}
	if res, err := s.Touch(ctx, "missing", ephemeral.WithTTL(time.Minute)); err != nil || res != (ephemeral.TouchResult{}) || rec.touches[1].TTL != time.Minute {
		t.Errorf("Touch(missing) = %+v, %v; request %+v", res, err, rec.touches[1])
	}
	many, err := s.TouchMany(ctx, []string{"a", "missing", "a"}, ephemeral.Quiet(), ephemeral.WithTenant("t6"), ephemeral.WithTTL(1500*time.Microsecond))
	at := time.UnixMilli(5000).UTC()
	if d := cmp.Diff([]ephemeral.TouchResult{{OK: true, Version: 10, ExpiresAt: at}, {}, {OK: true, Version: 12, ExpiresAt: at}}, many); err != nil || d != "" {
		t.Errorf("TouchMany = %v (-want +got):\n%s", err, d)
	}
	if d := cmp.Diff([]backend.TouchManyRequest{{Keys: []string{"a", "missing", "a"}, TTL: 2 * time.Millisecond, Quiet: true}}, rec.manys); d != "" {
		t.Errorf("TouchMany's request (-want +got):\n%s", d)
	}
	if many, err := s.TouchMany(ctx, nil); many != nil || err != nil {
		t.Errorf("TouchMany of no keys = %v, %v", many, err)
	}
	if ok, err := s.Remove(ctx, "k", ephemeral.WithReason("bye"), ephemeral.IfVersion(3)); err != nil || !ok ||
		rec.removes[0] != (backend.RemoveRequest{Key: "k", Reason: "bye", Cond: backend.Condition{Kind: backend.CondIfVersion, Version: 3}}) {
		t.Errorf("Remove = %v, %v; request %+v", ok, err, rec.removes)
	}
	if _, _, err := s.Get(ctx, "k", ephemeral.WithTenant("t3")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot(ctx, ephemeral.WithTenant("t4")); err != nil {
		t.Fatal(err)
	}
	r, err := s.Reader(ctx, ephemeral.WithTenant("t5"))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	want := "upsert t1,upsert default,upsert default,touch t2,touch default,touchmany t6,remove default,get t3,snapshot t4,subscribe t5"
	if got := strings.Join(rec.seen(), ","); got != want {
		t.Errorf("calls:\n got %s\nwant %s", got, want)
	}
}

func TestGetAndSnapshotDecode(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, textConfig("id", time.Second))
	if e, ok, err := s.Get(ctx, "hello"); err != nil || !ok || e.Key != "hello" || e.Value.S != "hello" || e.Version != 3 {
		t.Errorf("Get = %+v, %v, %v", e, ok, err)
	}
	if _, ok, err := s.Get(ctx, "missing"); err != nil || ok {
		t.Errorf("Get(missing) = %v, %v", ok, err)
	}
	if _, ok, err := s.Get(ctx, "bad"); !errors.Is(err, ephemeral.ErrDecode) || ok {
		t.Errorf("Get(bad) = %v, %v; want ErrDecode", ok, err)
	}
	snap, err := s.Snapshot(ctx, ephemeral.WithPrefix("p/"))
	if err != nil || len(snap.Entries) != 2 || snap.Entries[1].Key != "p/b" || snap.Entries[1].Value.S != "2" || snap.Entries[1].Version != 2 || snap.Cursor != "e-9" {
		t.Errorf("Snapshot = %+v, %v", snap, err)
	}
}

func TestPut(t *testing.T) {
	ctx := context.Background()
	// Without KeyOf, Put fails and writes nothing.
	s, rec := newStore(t, textConfig("id", time.Second))
	if _, err := s.Put(ctx, text{"v"}); !errors.Is(err, ephemeral.ErrInvalidConfig) {
		t.Errorf("Put without KeyOf = %v, want ErrInvalidConfig", err)
	}
	if calls := rec.seen(); len(calls) != 0 {
		t.Errorf("Put without KeyOf reached the backend: %q", calls)
	}

	// With KeyOf, Put writes at the value's key, with the options of an upsert.
	rec = newRecorder()
	gs, err := ephemeral.New(rec, guestConfig())
	if err != nil {
		t.Fatal(err)
	}
	g := guest{Room: "lobby:1", Name: "ann", Status: "online"}
	e, err := gs.Put(ctx, g, ephemeral.WithTenant("t"), ephemeral.WithTTL(time.Minute), ephemeral.IfNew())
	if err != nil || e.Key != (seat{"lobby:1", "ann"}) || e.Value != g || e.Version != 7 {
		t.Fatalf("Put = %+v, %v", e, err)
	}
	if r := rec.upserts[0]; r.Key != "lobby%3A1:ann" || r.TTL != time.Minute || r.Cond.Kind != backend.CondIfNew {
		t.Errorf("put request %+v", r)
	}
	if calls := rec.seen(); strings.Join(calls, ",") != "upsert t" {
		t.Errorf("calls = %q", calls)
	}
	// The key of KeyOf is checked like any other.
	if _, err := gs.Put(ctx, guest{Room: strings.Repeat("r", ephemeral.MaxKeyBytes)}); !errors.Is(err, ephemeral.ErrInvalidKey) {
		t.Errorf("Put of a value with a too long key = %v, want ErrInvalidKey", err)
	}
}

func TestReader(t *testing.T) {
	ctx := context.Background()
	s, rec := newStore(t, textConfig("id", time.Second))
	r, err := s.Reader(ctx, ephemeral.WithPrefix("k"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Cursor() != "e-5" {
		t.Errorf("fresh reader cursor = %q, want e-5", r.Cursor())
	}
	rec.events <- backend.Event{Kind: backend.EventUpsert, Epoch: "e", Key: "k", Version: 6, At: 1000, CreatedAt: 500, ExpiresAt: 2000, Value: []byte("v")}
	rec.events <- backend.Event{Kind: backend.EventUpsert, Epoch: "e", Key: "k", Version: 7, Value: []byte("bad")}
	rec.events <- backend.Event{Kind: backend.EventOverflow, Epoch: "f",
		After: backend.Cursor{Epoch: "e", Seq: 7}, FirstAvailable: backend.Cursor{Epoch: "f", Seq: 2}}
	rec.events <- backend.Event{Kind: backend.EventDelete, Epoch: "f", Key: "k", Version: 3, Reason: "gone"}
	rec.events <- backend.Event{Kind: backend.EventTouch, Epoch: "f", Key: "k", Version: 4, At: 3000, ExpiresAt: 5000}

	var got []string
	var upsert, touch ephemeral.Event[string, text]
	for ev, err := range r.Events(ctx) {
		switch {
		case errors.Is(err, ephemeral.ErrDecode):
			got = append(got, "decode-error:"+ev.Key+":"+ev.Cursor)
			if ev.Value != (text{}) || ev.Version != 7 {
				t.Errorf("event with an undecodable value: %+v, want the zero value and version 7", ev)
			}
		case err != nil:
			t.Fatal(err)
		case ev.Kind == ephemeral.EventUpsert:
			got = append(got, "upsert:"+ev.Value.S+":"+ev.Cursor)
			upsert = ev
		case ev.Kind == ephemeral.EventOverflow:
			got = append(got, "overflow:"+ev.After+">"+ev.Cursor)
			if ev.Key != "" || ev.Version != 0 {
				t.Errorf("overflow event has key %q, version %d", ev.Key, ev.Version)
			}
		default:
			got = append(got, ev.Kind.String()+":"+ev.Reason+":"+ev.Cursor)
			touch = ev
		}
		if len(got) == 5 {
			break
		}
	}
	want := "upsert:v:e-6 decode-error:k:e-7 overflow:e-7>f-2 delete:gone:f-3 touch::f-4"
	if strings.Join(got, " ") != want {
		t.Errorf("events:\n got %q\nwant %q", strings.Join(got, " "), want)
	}
	wantEntry := ephemeral.Entry[string, text]{Key: "k", Value: text{"v"}, Version: 6, Epoch: "e",
		CreatedAt: time.UnixMilli(500).UTC(), UpdatedAt: time.UnixMilli(1000).UTC(), ExpiresAt: time.UnixMilli(2000).UTC()}
	if upsert.Entry() != wantEntry || upsert.Key != "k" || upsert.Version != 6 || upsert.Value != (text{"v"}) ||
		!upsert.At.Equal(time.UnixMilli(1000)) || !upsert.CreatedAt.Equal(time.UnixMilli(500)) || !upsert.ExpiresAt.Equal(time.UnixMilli(2000)) {
		t.Errorf("upsert event %+v, entry %+v", upsert, upsert.Entry())
	}
	if touch.Value != (text{}) || !touch.CreatedAt.IsZero() || !touch.ExpiresAt.Equal(time.UnixMilli(5000)) || !touch.At.Equal(time.UnixMilli(3000)) || touch.Version != 4 {
		t.Errorf("touch event %+v", touch)
	}
	if r.Cursor() != "f-4" {
		t.Errorf("Cursor() = %q, want f-4", r.Cursor())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Recv(ctx); !errors.Is(err, ephemeral.ErrClosed) {
		t.Errorf("Recv after Close = %v, want ErrClosed", err)
	}

	r2, err := s.Reader(ctx, ephemeral.After("x-3"))
	if err != nil || r2.Cursor() != "x-3" {
		t.Fatalf("Reader(After) = %v, cursor %q", err, r2.Cursor())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	n := 0
	for _, err := range r2.Events(cctx) {
		n++
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Events on cancelled ctx yielded %v", err)
		}
	}
	if n != 1 {
		t.Errorf("Events on cancelled ctx yielded %d times, want 1", n)
	}
	r2.Close()
}

// TestConflictError checks the error of a conditional write whose condition fails, on the
// memory backend.
func TestConflictError(t *testing.T) {
	ctx := context.Background()
	s, _ := newMemStore(t)
	e := mustUpsert(t, s, "k", "1")
	mustUpsert(t, s, "other", "2")
	for _, tc := range []struct {
		name string
		call func() error
		want ephemeral.ConflictError
	}{
		{"upsert IfNew of a live key", func() error {
			_, err := s.Upsert(ctx, "k", text{"x"}, ephemeral.IfNew())
			return err
		}, ephemeral.ConflictError{Key: "k", Cond: backend.Condition{Kind: backend.CondIfNew}, Live: true, Version: e.Version}},
		{"upsert IfExists of a missing key", func() error {
			_, err := s.Upsert(ctx, "gone", text{"x"}, ephemeral.IfExists())
			return err
		}, ephemeral.ConflictError{Key: "gone", Cond: backend.Condition{Kind: backend.CondIfExists}}},
		{"upsert IfVersion of another version", func() error {
			_, err := s.Upsert(ctx, "k", text{"x"}, ephemeral.IfVersion(e.Version+1))
			return err
		}, ephemeral.ConflictError{Key: "k", Cond: backend.Condition{Kind: backend.CondIfVersion, Version: e.Version + 1}, Live: true, Version: e.Version}},
		{"touch IfVersion of another version", func() error {
			_, err := s.Touch(ctx, "k", ephemeral.IfVersion(99))
			return err
		}, ephemeral.ConflictError{Key: "k", Cond: backend.Condition{Kind: backend.CondIfVersion, Version: 99}, Live: true, Version: e.Version}},
		{"remove IfVersion of a missing key", func() error {
			_, err := s.Remove(ctx, "gone", ephemeral.IfVersion(1))
			return err
		}, ephemeral.ConflictError{Key: "gone", Cond: backend.Condition{Kind: backend.CondIfVersion, Version: 1}}},
	} {
		err := tc.call()
		var ce *ephemeral.ConflictError
		if !errors.As(err, &ce) {
			t.Errorf("%s: err = %v, want a *ConflictError", tc.name, err)
			continue
		}
		if *ce != tc.want {
			t.Errorf("%s: ConflictError %+v, want %+v", tc.name, *ce, tc.want)
		}
		if !errors.Is(err, ephemeral.ErrConflict) {
			t.Errorf("%s: %v does not match ErrConflict", tc.name, err)
		}
		if !strings.Contains(err.Error(), tc.want.Key) {
			t.Errorf("%s: %q does not name the key", tc.name, err)
		}
	}
	// Nothing was written: k is as it was, gone was not made.
	if got, ok, err := s.Get(ctx, "k"); err != nil || !ok || got != e {
		t.Errorf("Get(k) = %+v, %v, %v; want %+v", got, ok, err, e)
	}
	if _, ok, err := s.Get(ctx, "gone"); err != nil || ok {
		t.Errorf("Get(gone) = %v, %v", ok, err)
	}
	// A condition that holds writes.
	if _, err := s.Upsert(ctx, "k", text{"3"}, ephemeral.IfVersion(e.Version)); err != nil {
		t.Errorf("Upsert IfVersion of the live version: %v", err)
	}
}

// TestLimitsBelongToID checks the limits rule on the memory backend: the stores of one ID on
// one backend have the same limits, and share their state.
func TestLimitsBelongToID(t *testing.T) {
	ctx := context.Background()
	b := memstore.New()
	defer b.Close()
	newText := func(id string, l ephemeral.Limits, opts ...ephemeral.StoreOption) (*ephemeral.Store[string, text], error) {
		cfg := textConfig(id, time.Minute)
		cfg.Limits = l
		return ephemeral.New(b, cfg, opts...)
	}
	small := ephemeral.Limits{MaxEntries: 2}
	s1, err := newText("a", small)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newText("a", ephemeral.Limits{MaxEntries: 3}); !errors.Is(err, ephemeral.ErrInvalidConfig) {
		t.Errorf("New of the same ID with other limits = %v, want ErrInvalidConfig", err)
	}
	if _, err := newText("a", ephemeral.Limits{}, ephemeral.WithLimits(ephemeral.Limits{MaxEvents: 7})); !errors.Is(err, ephemeral.ErrInvalidConfig) {
		t.Errorf("New of the same ID with other limits by option = %v, want ErrInvalidConfig", err)
	}
	if _, err := newText("a", ephemeral.Limits{}); !errors.Is(err, ephemeral.ErrInvalidConfig) {
		t.Errorf("New of the same ID with the default limits = %v, want ErrInvalidConfig", err)
	}
	// Equal limits, also once the defaults are filled in: a second store of the same state.
	s2, err := newText("a", ephemeral.Limits{MaxEntries: 2, MaxEvents: ephemeral.Limits{}.WithDefaults().MaxEvents})
	if err != nil {
		t.Fatalf("New of the same ID with equal limits = %v", err)
	}
	mustUpsert(t, s1, "k1", "1")
	if e, ok, err := s2.Get(ctx, "k1"); err != nil || !ok || e.Value.S != "1" {
		t.Errorf("the second store's Get(k1) = %+v, %v, %v", e, ok, err)
	}
	mustUpsert(t, s2, "k2", "2")
	if snap, err := s1.Snapshot(ctx); err != nil || len(snap.Entries) != 2 {
		t.Errorf("the first store's Snapshot = %+v, %v", snap, err)
	}
	// One tenant, one MaxEntries, whichever store writes.
	if _, err := s1.Upsert(ctx, "k3", text{"3"}); !errors.Is(err, ephemeral.ErrCapacity) {
		t.Errorf("a third key = %v, want ErrCapacity", err)
	}
	// Another ID may have other limits, and other state.
	s3, err := newText("b", ephemeral.Limits{MaxEntries: 3})
	if err != nil {
		t.Fatalf("New of another ID with other limits = %v", err)
	}
	if _, ok, err := s3.Get(ctx, "k1"); err != nil || ok {
		t.Errorf("another ID's Get(k1) = %v, %v", ok, err)
	}
}
