package memstore

import (
	"context"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// TestNextWakeDroppedEvent checks that a reader that found its next event yet to come, and
// then, before it took the channel to wait on, missed the wake-up of appends that also dropped
// that event (MaxEvents 1), does not wait: it reports the overflow at once.
func TestNextWakeDroppedEvent(t *testing.T) {
	b := New(WithClock(NewFakeClock(start)))
	defer b.Close()
	st := open(b, "s", backend.Limits{MaxEvents: 1})
	ctx := context.Background()
	bs, err := st.Subscribe(ctx, "t", backend.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	sub := bs.(*subscription)
	sub.beforeWait = func() {
		sub.beforeWait = nil
		for _, v := range []string{"1", "2"} { // event 2 drops event 1, which the reader needs
			req := backend.UpsertRequest{Key: "k", Value: []byte(v), TTL: time.Minute}
			if _, err := st.Upsert(ctx, "t", req); err != nil {
				t.Error(err)
			}
		}
	}
	// Next returns at once when it is right; the timeout only ends a lost wake-up.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ev, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v (a lost wake-up)", err)
	}
	if ev.Kind != backend.EventOverflow {
		t.Fatalf("Next = %+v, want the overflow", ev)
	}
}
