package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// During a rolling upgrade, a writer of an older version of this package stamps its events with
// the time of their call but leaves the meta's #at as the last writer of this version set it.
// A pump that jumps a gap (the events after its head were trimmed before it read them) took
// its new head's time from #at, that of an older version, and its next read, which holds the
// event at that head with its own time, took the tenant for going back: a needless overflow
// (and a fork, so that every reader read again from the first version Redis keeps).
func TestGapJumpOlderWriterMiniredis(t *testing.T) {
	f := newMini(t, WithPollInterval(time.Hour))
	ctx := context.Background()
	st, ten := f.open(t, backend.Limits{MaxEvents: 10}), "upgrade"
	keys := st.keys(ten)
	sub := subscribe(t, st, ten, nil)
	for _, k := range []string{"x", "y", "z"} { // this version: #at is version 3's time
		upsert(t, st, ten, k, k, time.Hour)
	}
	expectVersions(t, sub, 1, 3)
	p := st.pump(ten)
	waitPump(t, p, "the pump stays busy", func(p *pump) bool { return !p.stale && !p.busy })
	at3, err := f.client.HGet(ctx, keys[keyState], metaAt).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The backend's registration lapsed (see the package doc, "Notices"): the older writer's
	// writes publish nothing, and the pump hears of them only when it reads.
	if err := f.client.HDel(ctx, keys[keyState], metaWatcher, metaWatched, metaShared).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // versions 4 to 23, of which the stream keeps about the last 10
		f.shift(time.Millisecond)
		ops := []writeOp{{code: opUpsert, key: fmt.Sprint("old", i), value: []byte("v"), ttl: time.Hour}}
		if _, err := runWrite(ctx, f.b.scripts, keys, "", st.limits, ops); err != nil {
			t.Fatal(err)
		}
	}
	// An older writer writes no #at: the meta keeps version 3's.
	if err := f.client.HSet(ctx, keys[keyState], metaAt, at3).Err(); err != nil {
		t.Fatal(err)
	}
	f.b.nudgeAll() // as the poll does, which finds the tenant at version 23
	if ev := next(t, sub); ev.Kind != backend.EventOverflow {
		t.Fatalf("after the gap: %s version %d, want an overflow (versions 4 on were trimmed)", ev.Kind, ev.Version)
	}
	waitPump(t, p, "the pump did not jump the gap", func(p *pump) bool { return p.head == 23 && !p.stale && !p.busy })
	for {
		if ev := next(t, sub); ev.Version == 23 {
			break
		}
	}
	// Any read of the pump at that head: a notice that came during a read, an expiry's tick, a
	// new pub/sub connection's check.
	f.b.nudgeAll()
	waitPump(t, p, "the pump stays busy", func(p *pump) bool { return !p.stale && !p.busy })
	e := upsert(t, st, ten, "k", "v", time.Hour)
	if ev := next(t, sub); ev.Kind != backend.EventUpsert || ev.Version != e.Version {
		t.Fatalf("after the read at the jumped head: %s version %d, want the upsert of version %d", ev.Kind, ev.Version, e.Version)
	}
	if n := p.forks.Load(); n != 0 {
		t.Fatalf("the pump took the tenant for going back %d times", n)
	}
}
