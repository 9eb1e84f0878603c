package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// catchUps is an Observer that reports each catch-up on a channel.
type catchUps struct {
	backend.NopObserver
	c chan struct{}
}

func (o catchUps) CatchUp(store, tenant string) {
	select {
	case o.c <- struct{}{}:
	default:
	}
}

// TestNextWakeDroppedEvent checks that a reader that found its next event yet to come in the
// pump's log, and then, before it took the channel to wait on, missed the wake-up of appends
// that also dropped that event (a buffer of 1), does not wait: it catches up from Redis at once.
func TestNextWakeDroppedEvent(t *testing.T) {
	obs := catchUps{c: make(chan struct{}, 1)}
	f := newMini(t, WithReaderBuffer(1), WithObserver(obs))
	st := f.open(t, backend.Limits{})
	sub := subscribe(t, st, "t", nil).(*subscription)
	sub.beforeWait = func() { // as the pump would deliver two events, here and now
		sub.beforeWait = nil
		l := sub.log
		h := l.Head()
		l.Append(&backend.Event{Kind: backend.EventUpsert, Key: "k", Epoch: l.Epoch(), Version: h + 1})
		l.Append(&backend.Event{Kind: backend.EventUpsert, Key: "k", Epoch: l.Epoch(), Version: h + 2})
		l.Wake()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sub.Next(ctx) // Redis has none of those events: it waits after its catch-up
	}()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-obs.c:
	case <-time.After(10 * time.Second): // it catches up at once when it is right
		t.Fatal("no catch-up after the next event was dropped: a lost wake-up")
	}
}
