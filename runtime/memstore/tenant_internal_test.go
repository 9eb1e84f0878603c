package memstore

import (
	"slices"
	"testing"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// TestEventLog checks the ring buffer against a plain slice through growth, wrapping, drops by
// time and a shrinking limit.
func TestEventLog(t *testing.T) {
	var l eventLog
	var model []backend.Event
	seq := uint64(0)
	push := func(limit int) {
		seq++
		ev := backend.Event{Version: seq, At: int64(seq)}
		l.push(ev, limit)
		model = append(model, ev)
		if len(model) > limit {
			model = model[len(model)-limit:]
		}
	}
	check := func(step string) {
		t.Helper()
		var got []uint64
		for i := range l.n {
			got = append(got, l.at(i).Version)
		}
		var want []uint64
		for _, ev := range model {
			want = append(want, ev.Version)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: log holds %v, want %v", step, got, want)
		}
	}
	for range 5 {
		push(100)
	}
	check("five pushes")
	l.dropBefore(4) // drops seqs 1 to 3: head moves
	model = model[3:]
	check("drop by time")
	for range 20 {
		push(100) // grows while the head is not at index 0
	}
	check("growth after a drop")
	for range 30 {
		push(16) // wraps at the limit
	}
	check("wrapping at 16")
	push(4) // a smaller limit drops down to it
	check("limit lowered to 4")
	l.dropBefore(int64(seq) + 1)
	model = nil
	check("everything dropped")
	push(4)
	check("push after emptying")
}

// open opens the store id of b with limits l (zero fields take the defaults), for the tests.
func open(b *Backend, id string, l ...backend.Limits) backend.Store {
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
