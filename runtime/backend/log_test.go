package backend_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

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
			l.Append(&backend.Event{Epoch: "e", Version: head, At: int64(head)})
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
				if ev.Version != v || ev.At != int64(v) || ev.Epoch != "e" || ev.Memo == nil {
					t.Fatalf("%s: At(%d) = %+v", step, v, ev)
				}
				if again, _ := l.At(v); again != ev {
					t.Fatalf("%s: At(%d) made a second event", step, v)
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
	l.Append(&backend.Event{Epoch: "e", Version: head - 1, At: -1}) // a repeat is ignored
	check("a repeat")
	l.DropBefore(int64(model[3]))
	model = model[3:]
	check("drop by time")
	add(20)
	check("growth and wrapping")
	head += 5 // a gap drops everything before it
	l.Append(&backend.Event{Epoch: "e", Version: head, At: int64(head)})
	model = []uint64{head}
	check("a gap")
	add(3)
	check("after the gap")
	l.DropBefore(int64(head) + 1)
	model = nil
	check("everything dropped")
	add(1)
	check("after emptying")

	w := backend.NewWaiter()
	l.Await(w)
	l.Close()
	woken := make(chan struct{})
	go func() {
		w.Wait(context.Background(), nil)
		close(woken)
	}()
	select {
	case <-woken:
	case <-time.After(30 * time.Second): // a bound: a passing run never waits for it
		t.Fatal("Close did not wake the waiting readers")
	}
	if ev, wait := l.At(head); ev != nil || wait {
		t.Fatalf("At after Close = %v, %v; want nothing, not to wait", ev, wait)
	}
}

// TestLogReaders checks, with the race detector, that readers who read while a writer appends
// see every event in order, each once, the one stored (not a copy), and are woken by appends:
// on a log with its own lock, and on one guarded by its writer's.
func TestLogReaders(t *testing.T) {
	t.Run("own", func(t *testing.T) {
		testLogReaders(t, backend.NewLog("e", 0, 2000), func(f func()) { f() })
	})
	t.Run("guarded", func(t *testing.T) {
		var mu sync.Mutex
		testLogReaders(t, backend.NewGuardedLog("e", 0, 2000, &mu), func(f func()) {
			mu.Lock()
			defer mu.Unlock()
			f()
		})
	})
}

// testLogReaders is TestLogReaders on l, a log of 2,000 events, whose writes run in write.
func testLogReaders(t *testing.T, l *backend.Log, write func(func())) {
	const n, readers = 2000, 8
	var wg sync.WaitGroup
	got := make([][]*backend.Event, readers)
	for r := range readers {
		wg.Go(func() {
			w := backend.NewWaiter()
			for v := uint64(1); v <= n; {
				l.Await(w)
				ev, wait := l.At(v)
				switch {
				case ev != nil:
					got[r] = append(got[r], ev)
					v++
				case wait:
					w.Wait(context.Background(), nil)
				default:
					t.Errorf("reader %d: event %d gone", r, v)
					return
				}
			}
		})
	}
	for v := uint64(1); v <= n; v++ {
		write(func() { l.Append(&backend.Event{Epoch: "e", Version: v, Key: "k"}) })
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

// TestWaiter checks what wakes a waiting Waiter: a wake-up of the log it registered with (the
// last one, when it moved to another log), its Signal, even one sent before it waited, the end
// of its context (a new context each wait, or the same), its timer, and Release; and that a
// wait with a done context, as a poll, leaves nothing behind that ends the next wait early.
// Each case runs in a synctest bubble, so that the waiter certainly waits before it is woken.
func TestWaiter(t *testing.T) {
	// woken reports whether wait returns once wake has run, while it waits.
	woken := func(t *testing.T, wait func() error, wake func()) error {
		t.Helper()
		var err error
		done := false
		go func() {
			err = wait()
			done = true
		}()
		synctest.Wait()
		if done {
			t.Fatal("Wait returned before it was woken")
		}
		wake()
		synctest.Wait()
		if !done {
			t.Fatal("Wait was not woken")
		}
		return err
	}
	bg := context.Background()
	t.Run("log", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a, b := backend.NewLog("e", 0, 8), backend.NewLog("e", 0, 8)
			w := backend.NewWaiter()
			wait := func() error { return w.Wait(bg, nil) }
			a.Await(w)
			a.Await(w) // registered once: a second signal would end the next wait early
			// wake wakes l's readers and checks that it reports want woken.
			wake := func(l *backend.Log, want int) func() {
				return func() {
					if n := l.Wake(); n != want {
						t.Errorf("Wake woke %d, want %d", n, want)
					}
				}
			}
			woken(t, wait, wake(a, 1))
			a.Await(w)
			b.Await(w) // moved on to b before a woke it: b's wake-up wakes it
			woken(t, wait, wake(b, 1))
			wake(b, 0)() // nobody waits on b any more
			// Within wakeSpacing of b's last wake-up, the next one is deferred: none woken
			// at once, and the reader woken when the bubble's clock moves on.
			b.Await(w)
			woken(t, wait, func() {
				wake(b, 0)()
				time.Sleep(time.Millisecond)
			})
		})
	})
	t.Run("signal", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := backend.NewWaiter()
			w.Signal() // before the wait: not lost
			if err := w.Wait(bg, nil); err != nil {
				t.Fatal(err)
			}
			woken(t, func() error { return w.Wait(bg, nil) }, w.Signal)
		})
	})
	t.Run("context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := backend.NewWaiter()
			for range 2 { // the second context replaces the first
				ctx, cancel := context.WithCancel(bg)
				err := woken(t, func() error { return w.Wait(ctx, nil) }, cancel)
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Wait = %v, want context.Canceled", err)
				}
			}
			ctx, cancel := context.WithCancel(bg)
			defer cancel()
			w.Signal()
			w.Wait(ctx, nil) // the same context on every wait, as a reader's loop has
			w.Signal()
			w.Wait(ctx, nil)
			if err := woken(t, func() error { return w.Wait(ctx, nil) }, cancel); !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait = %v, want context.Canceled", err)
			}
			if err := w.Wait(ctx, nil); !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait with a done context = %v, want context.Canceled at once", err)
			}
		})
	})
	t.Run("polling", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := backend.NewWaiter()
			ctx, cancel := context.WithCancel(bg)
			defer cancel()
			polled, stop := context.WithCancel(bg)
			stop()
			if err := w.Wait(polled, nil); !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait with a done context = %v, want context.Canceled", err)
			}
			synctest.Wait() // what the done context started, if anything, is over
			// The poll left no signal behind: the next wait waits.
			woken(t, func() error { return w.Wait(ctx, nil) }, w.Signal)
		})
	})
	t.Run("timer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := backend.NewWaiter()
			start := time.Now()
			if err := w.Wait(bg, time.After(time.Second)); err != nil || time.Since(start) != time.Second {
				t.Fatalf("Wait with a timer = %v after %v, want nil after 1s", err, time.Since(start))
			}
		})
	})
	t.Run("release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := backend.NewWaiter()
			ctx, cancel := context.WithCancel(bg)
			defer cancel()
			woken(t, func() error { return w.Wait(ctx, nil) }, w.Release)
		})
	})
}

// TestHandoff checks that Handoff lets the few readers a write woke run before the writer goes
// on, and not many: on one processor, where a woken reader runs only when the writer blocks or
// yields, a reader has its event when Handoff returns after waking it alone, and none of five
// has. (The scheduler takes the yielding writer back first in one turn in 61: the check asks
// for most rounds, not all.)
func TestHandoff(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const rounds = 100
	// run wakes n readers of a new log, hands off to them, and reports how many had their
	// event by then.
	run := func(n int) int {
		l := backend.NewLog("e", 0, 8)
		var got atomic.Int32
		var wg sync.WaitGroup
		for range n {
			w := backend.NewWaiter()
			l.Await(w)
			wg.Go(func() {
				if w.Wait(context.Background(), nil) == nil {
					got.Add(1)
				}
			})
		}
		woken := l.Wake()
		if woken != n {
			t.Errorf("Wake woke %d readers, want %d", woken, n)
		}
		backend.Handoff(woken)
		ran := int(got.Load())
		wg.Wait()
		return ran
	}
	one, many := 0, 0
	for range rounds {
		one += run(1)
		many += run(5)
	}
	if one < rounds/2 {
		t.Errorf("the one reader woken had its event when Handoff returned in %d of %d rounds", one, rounds)
	}
	if many > 5*rounds/2 {
		t.Errorf("of five readers woken, %d of %d had their events when Handoff returned: it yielded", many, 5*rounds)
	}
}
