package memstore_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/google/go-cmp/cmp"
)

// recorder is a backend.Observer that keeps what it is told.
type recorder struct {
	backend.NopObserver
	mu        sync.Mutex
	delivered []delivery
	expired   map[string]int // by store/tenant
	readers   map[string]int // by store/tenant
	refused   map[string]int // by store/tenant reason
}

func (r *recorder) Readers(store, tenant string, delta int) {
	r.count(&r.readers, store, tenant, delta)
}

func (r *recorder) openReaders() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.readers)
}

type delivery struct {
	Store, Tenant string
	Kind          backend.EventKind
	Age           time.Duration
}

func (r *recorder) Delivered(store, tenant string, kind backend.EventKind, age time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered = append(r.delivered, delivery{store, tenant, kind, age})
}

func (r *recorder) Expired(store, tenant string, n int) { r.count(&r.expired, store, tenant, n) }

func (r *recorder) Refused(store, tenant string, err error) {
	reason := "other"
	switch {
	case errors.Is(err, backend.ErrCapacity):
		reason = "capacity"
	case errors.Is(err, backend.ErrConflict):
		reason = "conflict"
	}
	r.count(&r.refused, store, tenant+" "+reason, 1)
}

// count adds n to (*m)[store/tenant].
func (r *recorder) count(m *map[string]int, store, tenant string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[store+"/"+tenant] += n
}

func TestObserver(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	clock := memstore.NewFakeClock(start)
	rec := &recorder{}
	b := memstore.New(memstore.WithClock(clock), memstore.WithObserver(rec))
	defer b.Close()
	s := open(b, "id")
	sub, err := s.Subscribe(ctx, "t", backend.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := s.Upsert(ctx, "t", backend.UpsertRequest{Key: "a", Value: []byte("1"), TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(7 * time.Millisecond) // the reader gets the upsert 7 ms after it happened
	if ev, err := sub.Next(ctx); err != nil || ev.Kind != backend.EventUpsert {
		t.Fatalf("Next = %v, %v; want the upsert", ev.Kind, err)
	}
	clock.Advance(time.Second) // a expires
	if ev, err := sub.Next(ctx); err != nil || ev.Kind != backend.EventExpire {
		t.Fatalf("Next = %v, %v; want the expiry", ev.Kind, err)
	}
	// A reader after a cursor of another epoch gets an overflow first.
	old := backend.Cursor{Epoch: backend.NewEpoch(time.Now()), Seq: 1}
	sub2, err := s.Subscribe(ctx, "t", backend.SubscribeRequest{After: &old})
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	if ev, err := sub2.Next(ctx); err != nil || ev.Kind != backend.EventOverflow {
		t.Fatalf("Next = %v, %v; want an overflow", ev.Kind, err)
	}
	if diff := cmp.Diff(map[string]int{"id/t": 2}, rec.openReaders()); diff != "" {
		t.Errorf("open readers (-want +got):\n%s", diff)
	}
	sub2.Close()
	sub2.Close() // counted once
	if diff := cmp.Diff(map[string]int{"id/t": 1}, rec.openReaders()); diff != "" {
		t.Errorf("open readers after a Close (-want +got):\n%s", diff)
	}
	// Closing the backend ends the reader left open and counts it out; its Close after that
	// counts nothing.
	b.Close()
	if diff := cmp.Diff(map[string]int{"id/t": 0}, rec.openReaders()); diff != "" {
		t.Errorf("open readers after the backend's Close (-want +got):\n%s", diff)
	}
	sub.Close()
	if diff := cmp.Diff(map[string]int{"id/t": 0}, rec.openReaders()); diff != "" {
		t.Errorf("open readers after the backend's Close and the reader's (-want +got):\n%s", diff)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []delivery{
		{"id", "t", backend.EventUpsert, 7 * time.Millisecond},
		// An expiry happens at its ExpiresAt, 1 s after the upsert, which the clock passed
		// by 7 ms.
		{"id", "t", backend.EventExpire, 7 * time.Millisecond},
		{"id", "t", backend.EventOverflow, 0},
	}
	if diff := cmp.Diff(want, rec.delivered); diff != "" {
		t.Errorf("Delivered calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"id/t": 1}, rec.expired); diff != "" {
		t.Errorf("Expired calls (-want +got):\n%s", diff)
	}
}

// The writes that a tenant's state refuses are reported, by reason; a touch or remove of a key
// that is not live is no refusal.
func TestObserverRefused(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{}
	b := memstore.New(memstore.WithClock(memstore.NewFakeClock(start)), memstore.WithObserver(rec))
	defer b.Close()
	s, err := b.Open("id", backend.Limits{MaxEntries: 1}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	up := func(key string, c backend.CondKind) error {
		_, err := s.Upsert(ctx, "t", backend.UpsertRequest{Key: key, Value: []byte("1"), TTL: time.Second, Cond: backend.Condition{Kind: c}})
		return err
	}
	for i, err := range []error{
		up("a", backend.CondNone),
		up("b", backend.CondNone),      // the tenant is full
		up("a", backend.CondIfNew),     // a is live
		up("zz", backend.CondIfExists), // zz is not
	} {
		if want := []error{nil, backend.ErrCapacity, backend.ErrConflict, backend.ErrConflict}[i]; !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("upsert %d: %v, want %v", i, err, want)
		}
	}
	if _, err := s.Touch(ctx, "t", backend.TouchRequest{Key: "a", TTL: time.Second, Cond: backend.Condition{Kind: backend.CondIfVersion, Version: 9}}); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("touch at another version: %v, want a conflict", err)
	}
	if _, err := s.Remove(ctx, "u", backend.RemoveRequest{Key: "a", Cond: backend.Condition{Kind: backend.CondIfExists}}); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("IfExists remove in a tenant that has no state: %v, want a conflict", err)
	}
	if r, err := s.Touch(ctx, "t", backend.TouchRequest{Key: "gone", TTL: time.Second}); err != nil || r.OK {
		t.Fatalf("touch of a missing key: %+v, %v", r, err)
	}
	if ok, err := s.Remove(ctx, "t", backend.RemoveRequest{Key: "gone"}); err != nil || ok {
		t.Fatalf("remove of a missing key: %v, %v", ok, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := map[string]int{"id/t capacity": 1, "id/t conflict": 3, "id/u conflict": 1}
	if diff := cmp.Diff(want, rec.refused); diff != "" {
		t.Errorf("Refused calls (-want +got):\n%s", diff)
	}
}

// TestObserverAllocs checks that an observer costs a write and a read no allocation.
func TestObserverAllocs(t *testing.T) {
	ctx := context.Background()
	allocs := func(opts ...memstore.Option) float64 {
		b := memstore.New(opts...)
		defer b.Close()
		s := open(b, "id")
		sub, err := s.Subscribe(ctx, "t", backend.SubscribeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		req := backend.UpsertRequest{Key: "a", Value: []byte("1"), TTL: time.Hour}
		return testing.AllocsPerRun(100, func() {
			if _, err := s.Upsert(ctx, "t", req); err != nil {
				t.Fatal(err)
			}
			if _, err := sub.Next(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	without, with := allocs(), allocs(memstore.WithObserver(&countingObserver{}))
	if with != without {
		t.Errorf("Upsert and Next: %v allocations with an observer, %v without", with, without)
	}
}

// countingObserver counts deliveries, as a metrics adapter does, without allocating.
type countingObserver struct {
	backend.NopObserver
	mu sync.Mutex
	n  int
}

func (o *countingObserver) Delivered(store, tenant string, kind backend.EventKind, age time.Duration) {
	o.mu.Lock()
	o.n++
	o.mu.Unlock()
}
