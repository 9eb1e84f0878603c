package ephemeral_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime"
)

// text is the value type of these tests; textCodec stores it verbatim and refuses "bad".
type text struct{ S string }

type textCodec struct{}

func (textCodec) Encode(dst []byte, v *text) ([]byte, error) { return append(dst, v.S...), nil }
func (textCodec) Decode(src []byte, v *text) error {
	if string(src) == "bad" {
		return errors.New("bad value")
	}
	v.S = string(src)
	return nil
}

// recorder is a Backend that records what reaches it.
type recorder struct {
	calls   []string
	scopes  []runtime.Scope
	upserts []runtime.UpsertRequest
	touches []runtime.TouchRequest
	removes []runtime.RemoveRequest
	events  chan runtime.RawEvent
}

func (r *recorder) note(op string, s runtime.Scope) {
	r.calls = append(r.calls, op)
	r.scopes = append(r.scopes, s)
}

func (r *recorder) Upsert(_ context.Context, s runtime.Scope, req runtime.UpsertRequest) (runtime.RawEntry, error) {
	r.note("upsert", s)
	r.upserts = append(r.upserts, req)
	return runtime.RawEntry{Key: req.Key, Value: req.Value, Version: 7}, nil
}

func (r *recorder) Touch(_ context.Context, s runtime.Scope, req runtime.TouchRequest) (runtime.TouchResult, error) {
	r.note("touch", s)
	r.touches = append(r.touches, req)
	return runtime.TouchResult{OK: true, Version: 8}, nil
}

func (r *recorder) Remove(_ context.Context, s runtime.Scope, req runtime.RemoveRequest) (bool, error) {
	r.note("remove", s)
	r.removes = append(r.removes, req)
	return true, nil
}

func (r *recorder) Get(_ context.Context, s runtime.Scope, key string) (runtime.RawEntry, bool, error) {
	r.note("get", s)
	if key == "missing" {
		return runtime.RawEntry{}, false, nil
	}
	return runtime.RawEntry{Key: key, Value: []byte(key), Version: 3}, true, nil
}

func (r *recorder) Snapshot(_ context.Context, s runtime.Scope, prefix string) (runtime.RawSnapshot, error) {
	r.note("snapshot", s)
	return runtime.RawSnapshot{
		Entries: []runtime.RawEntry{{Key: prefix + "a", Value: []byte("1")}, {Key: prefix + "b", Value: []byte("2")}},
		Cursor:  runtime.Cursor{Epoch: "e", Seq: 9},
	}, nil
}

func (r *recorder) Subscribe(_ context.Context, s runtime.Scope, req runtime.SubscribeRequest) (runtime.Subscription, error) {
	r.note("subscribe", s)
	start := runtime.Cursor{Epoch: "e", Seq: 5}
	if req.After != nil {
		start = *req.After
	}
	return &sub{start: start, events: r.events, done: make(chan struct{})}, nil
}

type sub struct {
	start  runtime.Cursor
	events chan runtime.RawEvent
	done   chan struct{}
}

func (s *sub) Start() runtime.Cursor { return s.start }
func (s *sub) Next(ctx context.Context) (runtime.RawEvent, error) {
	select {
	case ev := <-s.events:
		return ev, nil
	case <-s.done:
		return runtime.RawEvent{}, runtime.ErrClosed
	case <-ctx.Done():
		return runtime.RawEvent{}, ctx.Err()
	}
}
func (s *sub) Close() error {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	return nil
}

func newStore(t *testing.T, cfg runtime.Config, opts ...runtime.StoreOption) (*runtime.Store[text], *recorder) {
	t.Helper()
	rec := &recorder{events: make(chan runtime.RawEvent, 10)}
	s, err := runtime.New[text](rec, textCodec{}, cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, rec
}

func TestNewValidatesConfig(t *testing.T) {
	ok := runtime.Config{ID: "id", TTL: time.Second}
	for _, tc := range []struct {
		name string
		cfg  runtime.Config
		want error
	}{
		{"empty id", runtime.Config{TTL: time.Second}, runtime.ErrInvalidID},
		{"long id", runtime.Config{ID: strings.Repeat("i", 257), TTL: time.Second}, runtime.ErrInvalidID},
		{"zero ttl", runtime.Config{ID: "id"}, runtime.ErrInvalidTTL},
		{"negative ttl", runtime.Config{ID: "id", TTL: -time.Second}, runtime.ErrInvalidTTL},
		{"long tenant", runtime.Config{ID: "id", TTL: time.Second, Tenant: strings.Repeat("t", 257)}, runtime.ErrInvalidTenant},
		{"negative limit", runtime.Config{ID: "id", TTL: time.Second, Limits: runtime.Limits{MaxEntries: -1}}, runtime.ErrInvalidConfig},
	} {
		if _, err := runtime.New[text](&recorder{}, textCodec{}, tc.cfg); !errors.Is(err, tc.want) {
			t.Errorf("%s: New = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := runtime.New[text](nil, textCodec{}, ok); !errors.Is(err, runtime.ErrInvalidConfig) {
		t.Errorf("nil backend: New = %v, want ErrInvalidConfig", err)
	}
	s, _ := newStore(t, runtime.Config{ID: "id", TTL: 1500 * time.Microsecond})
	got := s.Config()
	want := runtime.Config{ID: "id", TTL: 2 * time.Millisecond, Tenant: "default", Limits: runtime.Limits{
		MaxEntries: 10_000, MaxPayloadBytes: 4_096, EventRetention: 5 * time.Minute, MaxEvents: 50_000,
	}}
	if got != want {
		t.Errorf("Config() = %+v, want %+v", got, want)
	}
	s, _ = newStore(t, ok, runtime.WithDefaultTTL(time.Minute), runtime.WithDefaultTenant("t"), runtime.WithLimits(runtime.Limits{MaxEntries: 3}))
	if c := s.Config(); c.TTL != time.Minute || c.Tenant != "t" || c.Limits.MaxEntries != 3 || c.Limits.MaxEvents != 50_000 {
		t.Errorf("options not applied: %+v", c)
	}
}

// TestRejectedCallsReachNoBackend checks that every invalid call fails with its sentinel and
// that the backend never sees it.
func TestRejectedCallsReachNoBackend(t *testing.T) {
	ctx := context.Background()
	s, rec := newStore(t, runtime.Config{ID: "id", TTL: time.Second, Limits: runtime.Limits{MaxPayloadBytes: 4}})
	long := strings.Repeat("k", runtime.MaxKeyBytes+1)
	longTenant := runtime.WithTenant(strings.Repeat("t", runtime.MaxTenantBytes+1))
	checks := []struct {
		name string
		err  error
		want error
	}{}
	add := func(name string, err error, want error) {
		checks = append(checks, struct {
			name string
			err  error
			want error
		}{name, err, want})
	}
	_, err := s.Upsert(ctx, "", text{"v"})
	add("upsert empty key", err, runtime.ErrInvalidKey)
	_, err = s.Upsert(ctx, long, text{"v"})
	add("upsert long key", err, runtime.ErrInvalidKey)
	_, err = s.Upsert(ctx, "k", text{"v"}, longTenant)
	add("upsert long tenant", err, runtime.ErrInvalidTenant)
	_, err = s.Upsert(ctx, "k", text{"v"}, runtime.WithTTL(0))
	add("upsert zero ttl", err, runtime.ErrInvalidTTL)
	_, err = s.Upsert(ctx, "k", text{"12345"})
	add("upsert payload", err, runtime.ErrPayloadTooLarge)
	_, err = s.Upsert(ctx, "k", text{"v"}, runtime.IfNew(), runtime.IfExists())
	add("upsert two conditions", err, runtime.ErrInvalidConfig)
	_, err = s.Touch(ctx, "")
	add("touch empty key", err, runtime.ErrInvalidKey)
	_, err = s.Touch(ctx, "k", runtime.WithTTL(-time.Second))
	add("touch negative ttl", err, runtime.ErrInvalidTTL)
	_, err = s.Touch(ctx, "k", longTenant)
	add("touch long tenant", err, runtime.ErrInvalidTenant)
	_, err = s.Remove(ctx, long)
	add("remove long key", err, runtime.ErrInvalidKey)
	_, err = s.Remove(ctx, "k", runtime.WithReason(strings.Repeat("r", runtime.MaxReasonBytes+1)))
	add("remove long reason", err, runtime.ErrPayloadTooLarge)
	_, _, err = s.Get(ctx, "")
	add("get empty key", err, runtime.ErrInvalidKey)
	_, err = s.Snapshot(ctx, longTenant)
	add("snapshot long tenant", err, runtime.ErrInvalidTenant)
	_, err = s.Reader(ctx, runtime.After("nonsense"))
	add("reader bad cursor", err, runtime.ErrInvalidCursor)
	_, err = s.Reader(ctx, longTenant)
	add("reader long tenant", err, runtime.ErrInvalidTenant)
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, c.err, c.want)
		}
	}
	if len(rec.calls) != 0 {
		t.Errorf("backend saw %v", rec.calls)
	}
}

func TestOptionsReachBackend(t *testing.T) {
	ctx := context.Background()
	s, rec := newStore(t, runtime.Config{ID: "id", TTL: time.Second})
	e, err := s.Upsert(ctx, "k", text{"v"}, runtime.WithTenant("t1"), runtime.WithTTL(time.Nanosecond), runtime.IfVersion(4))
	if err != nil || e.Value.S != "v" || e.Version != 7 {
		t.Fatalf("Upsert = %+v, %v", e, err)
	}
	if r := rec.upserts[0]; r.TTL != time.Millisecond || string(r.Value) != "v" || r.Cond != (runtime.Condition{Kind: runtime.CondIfVersion, Version: 4}) {
		t.Errorf("upsert request %+v", r)
	}
	if rec.scopes[0].Tenant != "t1" || rec.scopes[0].ID != "id" || rec.scopes[0].Limits.MaxEntries != runtime.DefaultMaxEntries {
		t.Errorf("upsert scope %+v", rec.scopes[0])
	}
	if _, err := s.Upsert(ctx, "k", text{"v"}, runtime.IfNew()); err != nil || rec.upserts[1].Cond.Kind != runtime.CondIfNew {
		t.Errorf("IfNew: %v %+v", err, rec.upserts[1])
	}
	if _, err := s.Upsert(ctx, "k", text{"v"}, runtime.IfExists()); err != nil || rec.upserts[2].Cond.Kind != runtime.CondIfExists {
		t.Errorf("IfExists: %v %+v", err, rec.upserts[2])
	}
	if _, err := s.Touch(ctx, "k", runtime.Quiet(), runtime.IfVersion(2)); err != nil {
		t.Fatal(err)
	}
	if r := rec.touches[0]; !r.Quiet || r.TTL != time.Second || r.Cond.Version != 2 {
		t.Errorf("touch request %+v", r)
	}
	if _, err := s.Remove(ctx, "k", runtime.WithReason("bye")); err != nil || rec.removes[0].Reason != "bye" {
		t.Errorf("remove: %v %+v", err, rec.removes)
	}
	if rec.scopes[1].Tenant != "default" {
		t.Errorf("default tenant not used: %+v", rec.scopes[1])
	}
}

func TestGetAndSnapshotDecode(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, runtime.Config{ID: "id", TTL: time.Second})
	if e, ok, err := s.Get(ctx, "hello"); err != nil || !ok || e.Value.S != "hello" || e.Version != 3 {
		t.Errorf("Get = %+v, %v, %v", e, ok, err)
	}
	if _, ok, err := s.Get(ctx, "missing"); err != nil || ok {
		t.Errorf("Get(missing) = %v, %v", ok, err)
	}
	if _, ok, err := s.Get(ctx, "bad"); !errors.Is(err, runtime.ErrDecode) || ok {
		t.Errorf("Get(bad) = %v, %v; want ErrDecode", ok, err)
	}
	snap, err := s.Snapshot(ctx, runtime.WithPrefix("p/"))
	if err != nil || len(snap.Entries) != 2 || snap.Entries[1].Key != "p/b" || snap.Entries[1].Value.S != "2" || snap.Cursor != "e-9" {
		t.Errorf("Snapshot = %+v, %v", snap, err)
	}
}

func TestReader(t *testing.T) {
	ctx := context.Background()
	s, rec := newStore(t, runtime.Config{ID: "id", TTL: time.Second})
	r, err := s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Cursor() != "e-5" {
		t.Errorf("fresh reader cursor = %q, want e-5", r.Cursor())
	}
	at := time.UnixMilli(1000)
	rec.events <- runtime.RawEvent{Kind: runtime.EventUpsert, Cursor: runtime.Cursor{Epoch: "e", Seq: 6}, Key: "k", Version: 6, At: at,
		Entry: runtime.RawEntry{Key: "k", Value: []byte("v"), Version: 6, ExpiresAt: at.Add(time.Second)}}
	rec.events <- runtime.RawEvent{Kind: runtime.EventUpsert, Cursor: runtime.Cursor{Epoch: "e", Seq: 7}, Key: "k", Version: 7, Entry: runtime.RawEntry{Value: []byte("bad")}}
	rec.events <- runtime.RawEvent{Kind: runtime.EventOverflow, Cursor: runtime.Cursor{Epoch: "f", Seq: 2},
		After: runtime.Cursor{Epoch: "e", Seq: 7}, FirstAvailable: runtime.Cursor{Epoch: "f", Seq: 2}}
	rec.events <- runtime.RawEvent{Kind: runtime.EventDelete, Cursor: runtime.Cursor{Epoch: "f", Seq: 3}, Key: "k", Version: 3, Reason: "gone"}

	var got []string
	for ev, err := range r.Events(ctx) {
		switch {
		case errors.Is(err, runtime.ErrDecode):
			got = append(got, "decode-error:"+ev.Cursor)
		case err != nil:
			t.Fatal(err)
		case ev.Kind == runtime.EventUpsert:
			got = append(got, "upsert:"+ev.Entry.Value.S+":"+ev.Cursor)
		case ev.Kind == runtime.EventOverflow:
			got = append(got, "overflow:"+ev.After+">"+ev.FirstAvailable)
		default:
			got = append(got, ev.Kind.String()+":"+ev.Reason+":"+ev.Cursor)
		}
		if len(got) == 4 {
			break
		}
	}
	want := "upsert:v:e-6 decode-error:e-7 overflow:e-7>f-2 delete:gone:f-3"
	if strings.Join(got, " ") != want {
		t.Errorf("events = %q, want %q", strings.Join(got, " "), want)
	}
	if r.Cursor() != "f-3" {
		t.Errorf("Cursor() = %q, want f-3", r.Cursor())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Recv(ctx); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Recv after Close = %v, want ErrClosed", err)
	}

	r2, err := s.Reader(ctx, runtime.After("x-3"))
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
