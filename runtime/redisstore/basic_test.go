package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

func upsert(t testing.TB, st backend.Store, tenant, key, value string, ttl time.Duration) backend.Entry {
	t.Helper()
	e, err := st.Upsert(context.Background(), tenant, backend.UpsertRequest{Key: key, Value: []byte(value), TTL: ttl})
	if err != nil {
		t.Fatalf("upsert %q: %v", key, err)
	}
	return e
}

func TestLifecycleMiniredis(t *testing.T) { testLifecycle(t, newMini(t)) }
func TestLifecycleRedis(t *testing.T)     { testLifecycle(t, newReal(t)) }

func testLifecycle(t *testing.T, f fixture) {
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{}), "t1"
	e1 := upsert(t, st, ten, "a", `{"x":1}`, time.Hour)
	if e1.Version != 1 || e1.CreatedAt != e1.UpdatedAt || e1.ExpiresAt-e1.UpdatedAt != time.Hour.Milliseconds() {
		t.Fatalf("first upsert: %+v", e1)
	}
	if f.mini != nil {
		// EVALSHA falls back to loading the script when the server lost it (flushed only on
		// miniredis: a shared server's scripts are not ours to drop).
		if err := f.client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	e2 := upsert(t, st, ten, "a", `{"x":2}`, time.Hour)
	if e2.Version != 2 || e2.CreatedAt != e1.CreatedAt {
		t.Fatalf("second upsert: %+v, created %v", e2, e1.CreatedAt)
	}
	got, ok, err := st.Get(ctx, ten, "a")
	if err != nil || !ok || string(got.Value) != `{"x":2}` || got.Version != 2 {
		t.Fatalf("get: %+v %v %v", got, ok, err)
	}
	tr, err := st.Touch(ctx, ten, backend.TouchRequest{Key: "a", TTL: 2 * time.Hour})
	if err != nil || !tr.OK || tr.Version != 3 {
		t.Fatalf("touch: %+v %v", tr, err)
	}
	q, err := st.Touch(ctx, ten, backend.TouchRequest{Key: "a", TTL: 3 * time.Hour, Quiet: true})
	if err != nil || !q.OK || q.Version != 3 || q.ExpiresAt <= tr.ExpiresAt {
		t.Fatalf("quiet touch: %+v %v", q, err)
	}
	ifV2 := backend.Condition{Kind: backend.CondIfVersion, Version: 2}
	_, err = st.Upsert(ctx, ten, backend.UpsertRequest{Key: "a", Value: []byte("1"), TTL: time.Hour, Cond: ifV2})
	var ce *backend.ConflictError
	if !errors.As(err, &ce) || *ce != (backend.ConflictError{Key: "a", Cond: ifV2, Live: true, Version: 3}) {
		t.Fatalf("upsert if version 2: %v, want a ConflictError at version 3", err)
	}
	if _, err := st.Upsert(ctx, ten, backend.UpsertRequest{Key: "a", Value: []byte("1"), TTL: time.Hour, Cond: backend.Condition{Kind: backend.CondIfNew}}); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("upsert if new: %v, want ErrConflict", err)
	}
	removed, err := st.Remove(ctx, ten, backend.RemoveRequest{Key: "a", Reason: "bye"})
	if err != nil || !removed {
		t.Fatalf("remove: %v %v", removed, err)
	}
	removed, err = st.Remove(ctx, ten, backend.RemoveRequest{Key: "a"})
	if err != nil || removed {
		t.Fatalf("second remove: %v %v", removed, err)
	}
	e3 := upsert(t, st, ten, "a", `3`, time.Hour)
	if e3.Version != 5 || e3.CreatedAt < e2.CreatedAt {
		t.Fatalf("upsert after remove: %+v", e3)
	}
	snap, err := st.Snapshot(ctx, ten, "")
	if err != nil || len(snap.Entries) != 1 || snap.Cursor.Seq != 5 {
		t.Fatalf("snapshot: %+v %v", snap, err)
	}
	sub, err := st.Subscribe(ctx, ten, backend.SubscribeRequest{After: &backend.Cursor{Epoch: snap.Cursor.Epoch, Seq: 0}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kinds := []backend.EventKind{backend.EventUpsert, backend.EventUpsert, backend.EventTouch, backend.EventDelete, backend.EventUpsert}
	for i, want := range kinds {
		ev, err := sub.Next(wctx)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.Kind != want || ev.Version != uint64(i+1) || ev.Key != "a" {
			t.Fatalf("event %d: %+v, want kind %v version %d", i, ev, want, i+1)
		}
		if ev.Kind == backend.EventDelete && ev.Reason != "bye" {
			t.Fatalf("delete reason %q", ev.Reason)
		}
	}
}

// Limits belong to a store ID: opening it again with other limits fails, with the same limits
// gives a store that shares the state. Other IDs are free to have their own.
func TestOpenLimitsMiniredis(t *testing.T) {
	f := newMini(t)
	ctx := context.Background()
	l := backend.Limits{MaxEntries: 2}.WithDefaults()
	st, err := f.b.Open("limits", l)
	if err != nil {
		t.Fatal(err)
	}
	other := l
	other.MaxEvents++
	if _, err := f.b.Open("limits", other); !errors.Is(err, backend.ErrInvalidConfig) {
		t.Fatalf("open with other limits: %v, want ErrInvalidConfig", err)
	}
	if _, err := f.b.Open("other-id", other); err != nil {
		t.Fatalf("open of another ID with other limits: %v", err)
	}
	if _, err := f.b.Open("invalid", backend.Limits{}); !errors.Is(err, backend.ErrInvalidConfig) {
		t.Fatalf("open with zero limits: %v, want ErrInvalidConfig", err)
	}
	again, err := f.b.Open("limits", l)
	if err != nil {
		t.Fatalf("open with the same limits: %v", err)
	}
	e := upsert(t, st, "t", "k", "v", time.Hour)
	if got, ok, err := again.Get(ctx, "t", "k"); err != nil || !ok || got.Version != e.Version {
		t.Fatalf("get through the second store: %+v, %v, %v; want version %d", got, ok, err, e.Version)
	}
	upsert(t, again, "t", "k2", "v", time.Hour)
	if _, err := st.Upsert(ctx, "t", backend.UpsertRequest{Key: "k3", Value: []byte("v"), TTL: time.Hour}); !errors.Is(err, backend.ErrCapacity) {
		t.Fatalf("third key through the first store: %v, want ErrCapacity", err)
	}

	f.b.Close()
	if _, err := f.b.Open("limits", l); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("open after Close: %v, want ErrClosed", err)
	}
}
