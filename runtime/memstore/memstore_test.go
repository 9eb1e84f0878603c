package memstore_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
	"github.com/ephemeral-go/ephemeral/runtime/storetest"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start is the fake clock's start: not a whole second, to catch millisecond truncation bugs.
var start = time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.UTC)

func newHarness(t *testing.T) storetest.Harness {
	clock := memstore.NewFakeClock(start)
	b := memstore.New(memstore.WithClock(clock))
	t.Cleanup(func() { b.Close() })
	return storetest.Harness{
		Backend: b,
		Advance: func(_ testing.TB, d time.Duration) { clock.Advance(d) },
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newHarness)
}

// TestClose checks that Close ends a Next that waits, and that every call after it fails with
// ErrClosed. It runs in a synctest bubble, so that Close comes when the reader certainly waits.
func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		b := memstore.New()
		s, sT := open(b, "id"), "t"
		sub, err := s.Subscribe(ctx, sT, backend.SubscribeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := sub.Next(ctx)
			done <- err
		}()
		synctest.Wait() // Next waits
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-done; !errors.Is(err, backend.ErrClosed) {
			t.Errorf("blocked Next after Close: %v, want ErrClosed", err)
		}
		if _, err := sub.Next(ctx); !errors.Is(err, backend.ErrClosed) {
			t.Errorf("Next after Close: %v, want ErrClosed", err)
		}
		if err := sub.Close(); err != nil {
			t.Errorf("subscription Close after backend Close: %v", err)
		}
		if _, err := s.Upsert(ctx, sT, backend.UpsertRequest{Key: "k", Value: []byte("1"), TTL: time.Second}); !errors.Is(err, backend.ErrClosed) {
			t.Errorf("Upsert after Close: %v, want ErrClosed", err)
		}
		if _, _, err := s.Get(ctx, sT, "k"); !errors.Is(err, backend.ErrClosed) {
			t.Errorf("Get after Close: %v, want ErrClosed", err)
		}
		if _, err := s.Snapshot(ctx, sT, ""); !errors.Is(err, backend.ErrClosed) {
			t.Errorf("Snapshot after Close: %v, want ErrClosed", err)
		}
		if _, err := s.Subscribe(ctx, sT, backend.SubscribeRequest{}); !errors.Is(err, backend.ErrClosed) {
			t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestCanceledContext(t *testing.T) {
	b := memstore.New()
	defer b.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s, sT := open(b, "id"), "t"
	if _, err := s.Upsert(ctx, sT, backend.UpsertRequest{Key: "k", Value: []byte("1"), TTL: time.Second}); !errors.Is(err, context.Canceled) {
		t.Errorf("Upsert with a canceled context: %v", err)
	}
	snap, err := s.Snapshot(t.Context(), sT, "")
	if err != nil || len(snap.Entries) != 0 || snap.Cursor.Seq != 0 {
		t.Errorf("snapshot after a canceled upsert: %+v, %v; want empty", snap, err)
	}
}

// TestSystemClockExpiry checks, on the real clock, that an idle tenant's reader gets the expire
// event (the latency is measured by BenchmarkExpiryLatency).
func TestSystemClockExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b := memstore.New()
	defer b.Close()
	s, sT := open(b, "id"), "t"
	sub, err := s.Subscribe(ctx, sT, backend.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ent, err := s.Upsert(ctx, sT, backend.UpsertRequest{Key: "k", Value: []byte("1"), TTL: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []backend.EventKind{backend.EventUpsert, backend.EventExpire} {
		ev, err := sub.Next(ctx)
		if err != nil || ev.Kind != want {
			t.Fatalf("Next = %v event, %v; want %v", ev.Kind, err, want)
		}
	}
	if now := time.Now(); now.Before(time.UnixMilli(ent.ExpiresAt)) {
		t.Errorf("expire event received at %v, before the expiry %v", now, ent.ExpiresAt)
	}
	if _, ok, err := s.Get(ctx, sT, "k"); ok || err != nil {
		t.Errorf("Get after the expire event: %v, %v", ok, err)
	}
}

// TestRetentionWhileIdle checks that events leave the retention window with time alone: a
// cursor older than the retention gets an overflow without any later write.
func TestRetentionWhileIdle(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	clock := memstore.NewFakeClock(start)
	b := memstore.New(memstore.WithClock(clock))
	defer b.Close()
	s, sT := open(b, "id", backend.Limits{EventRetention: time.Minute}), "t"
	snap, err := s.Snapshot(ctx, sT, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Upsert(ctx, sT, backend.UpsertRequest{Key: "k", Value: []byte("1"), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	live, err := s.Subscribe(ctx, sT, backend.SubscribeRequest{After: &snap.Cursor})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	clock.Advance(time.Minute + time.Millisecond)
	sub, err := s.Subscribe(ctx, sT, backend.SubscribeRequest{After: &snap.Cursor})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	want := backend.Event{
		Kind:           backend.EventOverflow,
		Epoch:          snap.Cursor.Epoch,
		At:             start.Add(time.Minute + time.Millisecond).UnixMilli(),
		After:          snap.Cursor,
		FirstAvailable: backend.Cursor{Epoch: snap.Cursor.Epoch, Seq: 1},
	}
	for _, sub := range []backend.Subscription{sub, live} {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, *ev); d != "" {
			t.Errorf("first event (-want +got):\n%s", d)
		}
	}
}

func TestFakeClock(t *testing.T) {
	c := memstore.NewFakeClock(start)
	tm := c.NewTimer()
	tm.Set(start.Add(time.Second))
	c.Advance(999 * time.Millisecond)
	select {
	case <-tm.C():
		t.Fatal("timer fired before its time")
	default:
	}
	c.Advance(time.Millisecond)
	select {
	case at := <-tm.C():
		if !at.Equal(start.Add(time.Second)) {
			t.Errorf("timer fired with %v, want %v", at, start.Add(time.Second))
		}
	default:
		t.Fatal("timer did not fire at its time")
	}
	tm.Set(start) // in the past: fires at once
	select {
	case <-tm.C():
	default:
		t.Fatal("timer set in the past did not fire")
	}
	tm.Set(c.Now().Add(time.Second))
	tm.Stop()
	c.Advance(time.Hour)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if got, want := c.Now(), start.Add(time.Hour+time.Second); !got.Equal(want) {
		t.Errorf("Now = %v, want %v", got, want)
	}
}

// BenchmarkExpiryLatency measures, on the real clock, how long after an entry's ExpiresAt a
// waiting reader receives its expire event (metric ms/expiry; the target is under 50 ms).
func BenchmarkExpiryLatency(b *testing.B) {
	ctx := context.Background()
	be := memstore.New()
	defer be.Close()
	s, sT := open(be, "id"), "t"
	sub, err := s.Subscribe(ctx, sT, backend.SubscribeRequest{})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	var total time.Duration
	for b.Loop() {
		ent, err := s.Upsert(ctx, sT, backend.UpsertRequest{Key: "k", Value: []byte("1"), TTL: 5 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		for {
			ev, err := sub.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if ev.Kind == backend.EventExpire {
				break
			}
		}
		total += time.Since(time.UnixMilli(ent.ExpiresAt))
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/expiry")
}

// TestConformanceRealTime runs the suite on the system clock, as on a real server: it checks
// that the suite's real-time mode holds up, and memstore on the real clock.
func TestConformanceRealTime(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		b := memstore.New()
		t.Cleanup(func() { b.Close() })
		return storetest.Harness{
			Backend:  b,
			Advance:  func(_ testing.TB, d time.Duration) { time.Sleep(d) },
			RealTime: true,
		}
	})
}

// open opens the store id of b with limits l (zero fields take the defaults), for the tests.
func open(b *memstore.Backend, id string, l ...backend.Limits) backend.Store {
	var lim backend.Limits
	if len(l) > 0 {
		lim = l[0]
	}
	st, err := b.Open(id, lim.WithDefaults())
	if err != nil {
		panic(err)
	}
	return st
}
