package memstore

import "testing"

// TestSystemClockMilli checks that the system clock's shortcut to milliseconds reads what
// Now().UnixMilli() reads at the same instant.
func TestSystemClockMilli(t *testing.T) {
	c := newSystemClock()
	for range 1000 {
		before := c.Now().UnixMilli()
		ms := c.unixMilli()
		after := c.Now().UnixMilli()
		if ms < before || ms > after {
			t.Fatalf("unixMilli() = %d, want from %d to %d", ms, before, after)
		}
	}
}
