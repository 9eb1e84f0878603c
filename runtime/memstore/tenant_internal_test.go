package memstore

import (
	"slices"
	"testing"
)

// TestEventLog checks the ring buffer against a plain slice through growth, wrapping, drops by
// time and a shrinking limit.
func TestEventLog(t *testing.T) {
	var l eventLog
	var model []event
	seq := uint64(0)
	push := func(limit int) {
		seq++
		ev := event{seq: seq, at: int64(seq)}
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
			got = append(got, l.at(i).seq)
		}
		var want []uint64
		for _, ev := range model {
			want = append(want, ev.seq)
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
