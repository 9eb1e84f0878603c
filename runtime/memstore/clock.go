package memstore

import (
	"sync"
	"time"
)

// Clock is the source of time of a [Backend] and the wake-up of its expiry scheduler. The
// default is the system clock; tests use a [FakeClock].
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a stopped timer of this clock. A backend makes exactly one.
	NewTimer() Timer
}

// Timer wakes a backend's expiry scheduler at a point in time of its [Clock].
type Timer interface {
	// C returns the channel that receives a value when the timer fires.
	C() <-chan time.Time
	// Set arms the timer to fire once the clock reads at or later, replacing any earlier
	// setting. A time that has already passed fires the timer at once.
	Set(at time.Time)
	// Stop disarms the timer. A value already sent on C may remain there.
	Stop()
}

// systemClock is the default Clock. It reads the wall clock once, when the backend is made,
// and then the monotonic clock: a step of the wall clock does not move expiries, and a reading
// costs one clock call instead of two.
type systemClock struct {
	base   time.Time
	baseNs int64 // base.UnixNano()
}

func newSystemClock() *systemClock {
	now := time.Now()
	return &systemClock{base: now, baseNs: now.UnixNano()}
}

func (c *systemClock) Now() time.Time { return c.base.Add(time.Since(c.base)) }

// unixMilli is Now().UnixMilli() (for times after 1970), without building a time.Time.
func (c *systemClock) unixMilli() int64 { return (c.baseNs + int64(time.Since(c.base))) / 1e6 }

func (c *systemClock) NewTimer() Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return systemTimer{c, t}
}

type systemTimer struct {
	clock *systemClock
	t     *time.Timer
}

func (s systemTimer) C() <-chan time.Time { return s.t.C }
func (s systemTimer) Set(at time.Time)    { s.t.Reset(at.Sub(s.clock.Now())) }
func (s systemTimer) Stop()               { s.t.Stop() }

// FakeClock is a [Clock] that moves only when told to, for tests: [FakeClock.Advance] fires the
// timers that fall due. It is safe for concurrent use.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewFakeClock returns a FakeClock that reads start until it is advanced.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start}
}

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and fires every timer due by the new time.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if t.armed && !t.at.After(c.now) {
			t.fireLocked(c.now)
		}
	}
}

// NewTimer returns a stopped timer that fires when the clock is advanced to its time.
func (c *FakeClock) NewTimer() Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

// timerCount reports how many timers were made on the clock.
func (c *FakeClock) timerCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

type fakeTimer struct {
	clock *FakeClock
	ch    chan time.Time
	at    time.Time // guarded by clock.mu
	armed bool      // guarded by clock.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Set(at time.Time) {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	t.at, t.armed = at, true
	if !at.After(t.clock.now) {
		t.fireLocked(t.clock.now)
	}
}

func (t *fakeTimer) Stop() {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	t.armed = false
}

// fireLocked disarms t and sends now on its channel unless a value is already waiting there.
func (t *fakeTimer) fireLocked(now time.Time) {
	t.armed = false
	select {
	case t.ch <- now:
	default:
	}
}
