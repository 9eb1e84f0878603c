package backend_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// TestLog checks the log against a plain slice through growth, wrapping at the limit, drops by
// time, a gap and a closing.
func TestLog(t *testing.T) {
	const limit = 12 // not a power of two: the ring is larger than the limit
	l := backend.NewLog("e", 3, limit)
	var model []uint64 // the versions the log should hold
	head := uint64(3)
	add := func(n int) {
		for range n {
			head++
			l.Append(backend.Event{Epoch: "e", Version: head, At: int64(head)})
			model = append(model, head)
			if len(model) > limit {
				model = model[len(model)-limit:]
			}
		}
	}
	check := func(step string) {
		t.Helper()
		var got []uint64
		for v := range head + 3 {
			ev, wait := l.At(v)
			if ev != nil {
				got = append(got, ev.Version)
				if ev.Version != v || ev.Memo == nil {
					t.Fatalf("%s: At(%d) = %+v", step, v, ev)
				}
			}
			if wait != (v > head) {
				t.Fatalf("%s: At(%d): wait %v with head %d", step, v, wait, head)
			}
		}
		if !slices.Equal(got, model) {
			t.Fatalf("%s: log holds %v, want %v", step, got, model)
		}
		if l.Head() != head || l.Len() != len(model) || len(model) > 0 && l.First() != model[0] {
			t.Fatalf("%s: head %d, first %d, len %d; want head %d and %v", step, l.Head(), l.First(), l.Len(), head, model)
		}
	}
	check("empty")
	add(5)
	check("five")
	l.Append(backend.Event{Epoch: "e", Version: head - 1}) // a repeat is ignored
	check("a repeat")
	l.DropBefore(int64(model[3]))
	model = model[3:]
	check("drop by time")
	add(20)
	check("growth and wrapping")
	head += 5 // a gap drops everything before it
	l.Append(backend.Event{Epoch: "e", Version: head, At: int64(head)})
	model = []uint64{head}
	check("a gap")
	add(3)
	check("after the gap")
	l.DropBefore(int64(head) + 1)
	model = nil
	check("everything dropped")
	add(1)
	check("after emptying")

	ch := l.Wait()
	l.Close()
	select {
	case <-ch:
	default:
		t.Fatal("Close did not wake the waiting readers")
	}
	if ev, wait := l.At(head); ev != nil || wait {
		t.Fatalf("At after Close = %v, %v; want nothing, not to wait", ev, wait)
	}
}

// TestLogReaders checks, with the race detector, that readers who read while a writer appends
// see every event in order, each once, the one stored (not a copy), and are woken by appends.
func TestLogReaders(t *testing.T) {
	const n, readers = 2000, 8
	l := backend.NewLog("e", 0, n)
	var wg sync.WaitGroup
	got := make([][]*backend.Event, readers)
	for r := range readers {
		wg.Go(func() {
			for v := uint64(1); v <= n; {
				ch := l.Wait()
				ev, wait := l.At(v)
				switch {
				case ev != nil:
					got[r] = append(got[r], ev)
					v++
				case wait:
					<-ch
				default:
					t.Errorf("reader %d: event %d gone", r, v)
					return
				}
			}
		})
	}
	for v := uint64(1); v <= n; v++ {
		l.Append(backend.Event{Epoch: "e", Version: v, Key: "k"})
		if v%3 == 0 || v == n {
			l.Wake()
		}
	}
	wg.Wait()
	for r := range readers {
		if len(got[r]) != n {
			t.Fatalf("reader %d got %d events, want %d", r, len(got[r]), n)
		}
		for i, ev := range got[r] {
			if ev.Version != uint64(i+1) || ev != got[0][i] {
				t.Fatalf("reader %d event %d: version %d, %p; want version %d, %p", r, i, ev.Version, ev, i+1, got[0][i])
			}
		}
	}
}

// TestMemo checks that the first value stored for a key wins, that another key finds nothing,
// and that a nil memo holds nothing.
func TestMemo(t *testing.T) {
	var m backend.Memo
	k1, k2 := new(int), new(int)
	if got := m.Load(k1); got != nil {
		t.Fatalf("empty memo holds %v", got)
	}
	if got := m.Store(k1, "a"); got != "a" {
		t.Fatalf("first Store = %v", got)
	}
	if got := m.Store(k1, "b"); got != "a" {
		t.Fatalf("second Store = %v, want the first value", got)
	}
	if got := m.Load(k2); got != nil {
		t.Fatalf("Load of another key = %v", got)
	}
	if got := m.Store(k2, "c"); got != nil {
		t.Fatalf("Store of another key = %v, want nil", got)
	}
	var nilMemo *backend.Memo
	if nilMemo.Load(k1) != nil || nilMemo.Store(k1, "x") != nil {
		t.Fatal("a nil memo holds a value")
	}
}
