package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime"
)

func scope(tenant string) runtime.Scope {
	return runtime.Scope{ID: "test", Tenant: tenant, Limits: runtime.Limits{}.WithDefaults()}
}

func upsert(t testing.TB, b *Backend, s runtime.Scope, key, value string, ttl time.Duration) runtime.RawEntry {
	t.Helper()
	e, err := b.Upsert(context.Background(), s, runtime.UpsertRequest{Key: key, Value: []byte(value), TTL: ttl})
	if err != nil {
		t.Fatalf("upsert %q: %v", key, err)
	}
	return e
}

func TestLifecycleMiniredis(t *testing.T) { testLifecycle(t, newMini(t)) }
func TestLifecycleRedis(t *testing.T)     { testLifecycle(t, newReal(t)) }

func testLifecycle(t *testing.T, f fixture) {
	ctx := context.Background()
	b, s := f.b, scope("t1")
	e1 := upsert(t, b, s, "a", `{"x":1}`, time.Hour)
	if e1.Version != 1 || !e1.CreatedAt.Equal(e1.UpdatedAt) || e1.ExpiresAt.Sub(e1.UpdatedAt) != time.Hour {
		t.Fatalf("first upsert: %+v", e1)
	}
	if f.mini != nil {
		// EVALSHA falls back to loading the script when the server lost it (flushed only on
		// miniredis: a shared server's scripts are not ours to drop).
		if err := f.client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	e2 := upsert(t, b, s, "a", `{"x":2}`, time.Hour)
	if e2.Version != 2 || !e2.CreatedAt.Equal(e1.CreatedAt) {
		t.Fatalf("second upsert: %+v, created %v", e2, e1.CreatedAt)
	}
	got, ok, err := b.Get(ctx, s, "a")
	if err != nil || !ok || string(got.Value) != `{"x":2}` || got.Version != 2 {
		t.Fatalf("get: %+v %v %v", got, ok, err)
	}
	tr, err := b.Touch(ctx, s, runtime.TouchRequest{Key: "a", TTL: 2 * time.Hour})
	if err != nil || !tr.OK || tr.Version != 3 {
		t.Fatalf("touch: %+v %v", tr, err)
	}
	q, err := b.Touch(ctx, s, runtime.TouchRequest{Key: "a", TTL: 3 * time.Hour, Quiet: true})
	if err != nil || !q.OK || q.Version != 3 || !q.ExpiresAt.After(tr.ExpiresAt) {
		t.Fatalf("quiet touch: %+v %v", q, err)
	}
	if _, err := b.Upsert(ctx, s, runtime.UpsertRequest{Key: "a", Value: []byte("1"), TTL: time.Hour, Cond: runtime.Condition{Kind: runtime.CondIfVersion, Version: 2}}); !errors.Is(err, runtime.ErrConflict) {
		t.Fatalf("upsert if version 2: %v, want ErrConflict", err)
	}
	if _, err := b.Upsert(ctx, s, runtime.UpsertRequest{Key: "a", Value: []byte("1"), TTL: time.Hour, Cond: runtime.Condition{Kind: runtime.CondIfNew}}); !errors.Is(err, runtime.ErrConflict) {
		t.Fatalf("upsert if new: %v, want ErrConflict", err)
	}
	removed, err := b.Remove(ctx, s, runtime.RemoveRequest{Key: "a", Reason: "bye"})
	if err != nil || !removed {
		t.Fatalf("remove: %v %v", removed, err)
	}
	removed, err = b.Remove(ctx, s, runtime.RemoveRequest{Key: "a"})
	if err != nil || removed {
		t.Fatalf("second remove: %v %v", removed, err)
	}
	e3 := upsert(t, b, s, "a", `3`, time.Hour)
	if e3.Version != 5 || e3.CreatedAt.Before(e2.CreatedAt) {
		t.Fatalf("upsert after remove: %+v", e3)
	}
	snap, err := b.Snapshot(ctx, s, "")
	if err != nil || len(snap.Entries) != 1 || snap.Cursor.Seq != 5 {
		t.Fatalf("snapshot: %+v %v", snap, err)
	}
	sub, err := b.Subscribe(ctx, s, runtime.SubscribeRequest{After: &runtime.Cursor{Epoch: snap.Cursor.Epoch, Seq: 0}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kinds := []runtime.EventKind{runtime.EventUpsert, runtime.EventUpsert, runtime.EventTouch, runtime.EventDelete, runtime.EventUpsert}
	for i, want := range kinds {
		ev, err := sub.Next(wctx)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.Kind != want || ev.Version != uint64(i+1) || ev.Key != "a" {
			t.Fatalf("event %d: %+v, want kind %v version %d", i, ev, want, i+1)
		}
		if ev.Kind == runtime.EventDelete && ev.Reason != "bye" {
			t.Fatalf("delete reason %q", ev.Reason)
		}
	}
}
