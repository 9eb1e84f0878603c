package backend

import "testing"

// TestAwaitDropsReleased checks that waiters released while their log had no wake-up do not
// pile up in it: an idle tenant's readers come and go.
func TestAwaitDropsReleased(t *testing.T) {
	l := NewLog("e", 0, 8)
	live := NewWaiter()
	l.Await(live)
	for range 10_000 {
		w := NewWaiter()
		l.Await(w)
		w.Release()
	}
	l.wmu.Lock()
	n := len(l.waiters)
	l.wmu.Unlock()
	if n > 2*minPrune {
		t.Fatalf("%d waiters held after 10,000 released ones, want at most %d", n, 2*minPrune)
	}
	l.Wake()
	select {
	case <-live.c:
	default:
		t.Fatal("the waiter that was not released was dropped: not woken")
	}
}
