package redisstore

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// testBatcher is a batcher of ints by string key, at most 3 a batch, 1 call or batch of a key in
// flight, whose result of n is 2n (or -1 when its ctx ended). It records its batches and the
// drains it spawned; a batch that begins with a number in hold waits until that is closed.
type testBatcher struct {
	batcher[string, int, int]

	mu      sync.Mutex
	batches [][]int
	spawned int
	hold    map[int]chan struct{}
}

func newTestBatcher() *testBatcher {
	tb := &testBatcher{hold: map[int]chan struct{}{}}
	tb.batcher = batcher[string, int, int]{
		max:   3,
		depth: 1,
		one:   func(_ context.Context, _ string, n int) int { tb.record([]int{n}); return 2 * n },
		batch: func(_ string, calls []*call[int, int]) {
			var ns []int
			for _, c := range calls {
				ns = append(ns, c.req)
			}
			tb.record(ns)
			for _, c := range calls {
				c.res = 2 * c.req
				close(c.done)
			}
		},
		ended: func(error) int { return -1 },
		spawn: func(f func()) {
			tb.mu.Lock()
			tb.spawned++
			tb.mu.Unlock()
			go f()
		},
	}
	return tb
}

func (tb *testBatcher) record(ns []int) {
	tb.mu.Lock()
	tb.batches = append(tb.batches, ns)
	hold := tb.hold[ns[0]]
	tb.mu.Unlock()
	if hold != nil {
		<-hold
	}
}

// check fails t unless tb ran want, spawned that many drains, and forgot its queues.
func (tb *testBatcher) check(t *testing.T, want [][]int, spawned int) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if !slices.EqualFunc(tb.batches, want, slices.Equal) || tb.spawned != spawned {
		t.Errorf("batches %v, %d drains spawned; want %v, %d", tb.batches, tb.spawned, want, spawned)
	}
	tb.batcher.mu.Lock()
	defer tb.batcher.mu.Unlock()
	if len(tb.queues) != 0 {
		t.Errorf("%d queues left behind", len(tb.queues))
	}
}

// checkQueue fails t unless the queue of key "k" has flying places in flight and waiting
// calls queued.
func (tb *testBatcher) checkQueue(t *testing.T, when string, flying, waiting int) {
	t.Helper()
	tb.batcher.mu.Lock()
	q := tb.queues["k"]
	gotFlying, gotWaiting := q.flying, len(q.calls)
	tb.batcher.mu.Unlock()
	if gotFlying != flying || gotWaiting != waiting {
		t.Errorf("%s: %d places in flight, %d calls waiting; want %d, %d", when, gotFlying, gotWaiting, flying, waiting)
	}
}

// With nothing of its key in flight, doGroup sends its group itself, in one batch.
func TestDoGroupAlone(t *testing.T) {
	tb := newTestBatcher()
	if got := tb.doGroup(t.Context(), "k", []int{1, 2, 3}); !slices.Equal(got, []int{2, 4, 6}) {
		t.Errorf("doGroup = %v", got)
	}
	if got := tb.doGroup(t.Context(), "k", []int{4}); !slices.Equal(got, []int{8}) {
		t.Errorf("doGroup = %v", got)
	}
	tb.check(t, [][]int{{1, 2, 3}, {4}}, 0)
}

// A group goes whole in one batch: the calls before it that fill part of a batch go without
// it.
func TestDoGroupWhole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newTestBatcher()
		q := &queue[int, int]{flying: 1}
		tb.queues = map[string]*queue[int, int]{"k": q}
		var wg sync.WaitGroup
		var got []int
		wg.Go(func() { tb.do(t.Context(), "k", 10) })
		synctest.Wait()
		wg.Go(func() { tb.do(t.Context(), "k", 11) })
		synctest.Wait()
		wg.Go(func() { got = tb.doGroup(t.Context(), "k", []int{1, 2, 3}) })
		synctest.Wait()
		tb.release("k", q, 0)
		wg.Wait()
		if !slices.Equal(got, []int{2, 4, 6}) {
			t.Errorf("doGroup = %v", got)
		}
		synctest.Wait()
		tb.check(t, [][]int{{10, 11}, {1, 2, 3}}, 1)
	})
}

// A doGroup that sends its group itself stops when the group is sent: a call that came after
// it goes to a drain of its own, and doGroup returns while that call's batch runs.
func TestDoGroupHandsOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newTestBatcher()
		first, later := make(chan struct{}), make(chan struct{})
		tb.hold[1], tb.hold[3] = first, later
		var all []int
		var one int
		var wg sync.WaitGroup
		wg.Go(func() { all = tb.doGroup(t.Context(), "k", []int{1, 2}) })
		synctest.Wait() // its batch runs, held
		wg.Go(func() { one = tb.do(t.Context(), "k", 3) })
		synctest.Wait() // 3 waits behind it
		close(first)
		synctest.Wait() // doGroup hands 3 on
		if all == nil {
			t.Fatal("doGroup has not returned while a later call's batch runs")
		}
		close(later)
		wg.Wait()
		if !slices.Equal(all, []int{2, 4}) || one != 6 {
			t.Errorf("doGroup = %v, do = %d", all, one)
		}
		tb.check(t, [][]int{{1, 2}, {3}}, 1)
	})
}

// With the most calls of its key in flight, a group waits and goes in a batch of a drain when
// the call in flight ends; when ctx ends first, doGroup returns the ended results, and its
// requests are not sent.
func TestDoGroupWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newTestBatcher()
		q := &queue[int, int]{flying: 1}
		tb.queues = map[string]*queue[int, int]{"k": q}
		var got []int
		done := make(chan struct{})
		go func() {
			defer close(done)
			got = tb.doGroup(t.Context(), "k", []int{1, 2, 3})
		}()
		synctest.Wait()
		tb.batcher.mu.Lock()
		waiting := len(q.calls)
		tb.batcher.mu.Unlock()
		if waiting != 3 {
			t.Fatalf("%d calls wait, want 3", waiting)
		}
		tb.release("k", q, 0)
		<-done
		if !slices.Equal(got, []int{2, 4, 6}) {
			t.Errorf("doGroup = %v", got)
		}
		synctest.Wait()
		tb.check(t, [][]int{{1, 2, 3}}, 1)

		tb = newTestBatcher()
		q = &queue[int, int]{flying: 1}
		tb.queues = map[string]*queue[int, int]{"k": q}
		ctx, cancel := context.WithCancel(t.Context())
		done = make(chan struct{})
		go func() {
			defer close(done)
			got = tb.doGroup(ctx, "k", []int{1, 2})
		}()
		synctest.Wait()
		cancel()
		<-done
		if !slices.Equal(got, []int{-1, -1}) {
			t.Errorf("doGroup with its ctx ended = %v", got)
		}
		tb.release("k", q, 0)
		synctest.Wait()
		tb.check(t, nil, 1)
	})
}

// A doGroup whose ctx ends while it sends its own batch returns ended's results, not those of
// the batch, whose call ran under a context of its own. When it waits, both its batch and its
// ctx are done, and a select between them would take either: 20 rounds, each a coin toss for
// a wait that took the batch's results.
func TestDoGroupEndsWithItsContext(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			tb := newTestBatcher()
			hold := make(chan struct{})
			tb.hold[1] = hold
			ctx, cancel := context.WithCancel(t.Context())
			var got []int
			done := make(chan struct{})
			go func() {
				defer close(done)
				got = tb.doGroup(ctx, "k", []int{1, 2})
			}()
			synctest.Wait()
			cancel()
			close(hold)
			<-done
			if !slices.Equal(got, []int{-1, -1}) {
				t.Fatalf("doGroup with its ctx ended during its batch = %v", got)
			}
			tb.check(t, [][]int{{1, 2}}, 0)
		})
	}
}

// The places of a key share its waiting calls: with a batch in flight, a call that finds a
// place free and nothing waiting waits, where it went alone before, until enough calls wait
// to fill a place (half as many as the places in flight send on average); a place that ends
// a batch gives its place up while fewer than that wait, and they go when the next place ends.
func TestBatcherSharesPlaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newTestBatcher()
		tb.depth, tb.max = 2, 8
		holdA, holdB := make(chan struct{}), make(chan struct{})
		tb.hold[1], tb.hold[6] = holdA, holdB
		sent := func(want ...[]int) {
			t.Helper()
			tb.mu.Lock()
			defer tb.mu.Unlock()
			if !slices.EqualFunc(tb.batches, want, slices.Equal) {
				t.Errorf("batches %v, want %v", tb.batches, want)
			}
		}
		var wg sync.WaitGroup
		call := func(n int) {
			wg.Go(func() { tb.do(t.Context(), "k", n) })
			synctest.Wait()
		}
		wg.Go(func() { tb.doGroup(t.Context(), "k", []int{1, 2, 3, 4, 5}) }) // place A, held
		synctest.Wait()
		call(6)
		call(7)
		sent([]int{1, 2, 3, 4, 5}) // 6 and 7 wait: fewer than half of A's 5
		call(8)
		sent([]int{1, 2, 3, 4, 5}, []int{6, 7, 8}) // they fill place B, held
		call(9)
		close(holdA) // A ends: 9 alone is fewer than half of B's 3
		synctest.Wait()
		tb.checkQueue(t, "after A", 1, 1)
		close(holdB) // B ends and takes 9
		wg.Wait()
		synctest.Wait()
		tb.check(t, [][]int{{1, 2, 3, 4, 5}, {6, 7, 8}, {9}}, 2)
	})
}

// endingCtx is a context whose Err is nil the first time it is read and ends it then: as if
// its caller gave up while a batch was being made of its calls.
type endingCtx struct {
	context.Context
	cancel func()
	reads  atomic.Int32
}

func (c *endingCtx) Err() error {
	if c.reads.Add(1) == 1 {
		return nil
	}
	c.cancel()
	return c.Context.Err()
}

// A group whose ctx ends while a batch is made of it goes whole or not at all: its ctx is read
// once for all its calls.
func TestDoGroupEndsWhole(t *testing.T) {
	tb := newTestBatcher()
	ctx, cancel := context.WithCancel(t.Context())
	got := tb.doGroup(&endingCtx{Context: ctx, cancel: cancel}, "k", []int{1, 2, 3})
	if !slices.Equal(got, []int{-1, -1, -1}) {
		t.Errorf("doGroup = %v, want the ended results", got)
	}
	tb.check(t, [][]int{{1, 2, 3}}, 0)
}

// A call alone or a batch that panics ends its place: once its caller has recovered, the
// key's next calls run as if it had returned, where they waited until their ctx ended.
func TestBatcherPanics(t *testing.T) {
	for _, group := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "group"}[group], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tb := newTestBatcher()
				tb.depth = 2
				one, batch := tb.one, tb.batch
				tb.one = func(ctx context.Context, k string, n int) int {
					if n == 1 {
						panic("one")
					}
					return one(ctx, k, n)
				}
				tb.batch = func(k string, calls []*call[int, int]) {
					if calls[0].req == 1 {
						panic("batch")
					}
					batch(k, calls)
				}
				func() {
					defer func() {
						if recover() == nil {
							t.Errorf("group %v: no panic", group)
						}
					}()
					if group {
						tb.doGroup(t.Context(), "k", []int{1, 2, 3})
					} else {
						tb.do(t.Context(), "k", 1)
					}
				}()
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				if got := tb.do(ctx, "k", 4); got != 8 {
					t.Errorf("group %v: do after the panic = %d, want 8", group, got)
				}
				if got := tb.doGroup(ctx, "k", []int{5, 6}); !slices.Equal(got, []int{10, 12}) {
					t.Errorf("group %v: doGroup after the panic = %v, want [10 12]", group, got)
				}
				synctest.Wait()
				tb.batcher.mu.Lock()
				if len(tb.queues) != 0 {
					t.Errorf("group %v: %d queues left behind", group, len(tb.queues))
				}
				tb.batcher.mu.Unlock()
			})
		})
	}
}

// A group that finds a place free but too few calls waiting for it (fewer than half of what
// the place in flight sends) leaves them to that place, which takes them when it ends.
func TestDoGroupLeavesToPlaceInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newTestBatcher()
		tb.depth, tb.max = 2, 8
		hold := make(chan struct{})
		tb.hold[1] = hold
		var wg sync.WaitGroup
		wg.Go(func() { tb.doGroup(t.Context(), "k", []int{1, 2, 3, 4, 5}) }) // held in flight
		synctest.Wait()
		var got []int
		wg.Go(func() { got = tb.doGroup(t.Context(), "k", []int{6, 7}) })
		synctest.Wait()
		tb.checkQueue(t, "with 5 in flight", 1, 2)
		close(hold)
		wg.Wait()
		synctest.Wait()
		if !slices.Equal(got, []int{12, 14}) {
			t.Errorf("doGroup = %v", got)
		}
		tb.check(t, [][]int{{1, 2, 3, 4, 5}, {6, 7}}, 1)
	})
}
