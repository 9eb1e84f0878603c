package redisstore

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// call is a call of a batcher that waits for its batch: its request, and its result once done
// is closed.
type call[Req, Res any] struct {
	ctx  context.Context // the caller's: a call whose ctx ends before its batch is sent is dropped
	req  Req
	res  Res
	done chan struct{} // closed when res is set
	// group is, in the first call of a group, the number of its calls, which follow it in the
	// queue and go in one batch (see doGroup); 0 in the others.
	group int
}

// queue is what a batcher keeps of a key with calls in flight: the places in flight (calls
// alone, batches, drains between two batches), the calls they are sending, and the calls that
// wait.
type queue[Req, Res any] struct {
	flying  int
	sending int
	calls   []*call[Req, Res]
}

// batcher runs calls in batches by key (group commit), with at most depth places of a key in
// flight, each a call alone or a batch of at most max calls. A call that finds no batch of
// its key in flight (only calls alone, fewer than depth) and none waiting runs at once, alone,
// on the caller's goroutine, under the caller's ctx. Calls that arrive otherwise wait, and go
// in their order: under contention, the fixed cost of a call (its round trip, and the server's
// work around it) is shared by the batch, and with a depth of 2 the server runs one batch
// while the client completes the one before and sends the next.
//
// The places share the waiting calls evenly, which is what keeps the batches large. With
// yield, a place that ends a batch yields the processor once before it looks at the queue, so
// that the batch's callers, which it has just woken, can make their next calls first. It takes
// the calls that wait then, unless they are fewer than half as many as the other places send on
// average: it gives its place up instead, and the calls wait for the next place to end. A call
// that arrives when a place is free opens it, on a goroutine of its own, when the calls
// waiting, itself included, are at least that many. Without these rules a caller that finds a
// free place and nothing waiting goes alone again and again while the other callers wait in
// one large batch: in BenchmarkUpsert at 32 in flight, a fifth to a quarter of the script calls
// were single writes on a quiet machine (9.6 writes a call on average) and nine tenths on a
// busy one (2.4); with them, 15 writes a call, as against 16 with a single place. Only the
// batchers of a tenant's writes yield: their callers are often loops that write again at once
// (a hot tenant); the callers of the others are many, and on a busy machine a yield puts the
// place behind every goroutine that can run.
//
// A waiting call returns when its batch is done or when its ctx ends, whichever comes first;
// one whose ctx ends before its batch is sent is dropped, unsent.
//
// Calls in flight together may take effect in either order: each call is concurrent with the
// others in flight (none of them has returned when it was made), so any order of them is one a
// caller could have seen; the calls of one goroutine are in its order.
type batcher[K comparable, Req, Res any] struct {
	max   int
	depth int                                         // the most calls or batches of a key in flight
	yield bool                                        // a place that ends a batch yields first (see batcher)
	keep  bool                                        // keep the queue of a key with nothing in flight (few keys)
	one   func(ctx context.Context, k K, req Req) Res // runs a call alone
	batch func(k K, calls []*call[Req, Res])          // runs calls together, sets their res and closes their done
	ended func(err error) Res                         // the result of a call whose ctx ended with err
	spawn func(func())                                // runs a drain of waiting calls on a goroutine

	mu     sync.Mutex
	queues map[K]*queue[Req, Res] // one per key with a call in flight (with keep, per key used)
}

// do runs req, alone or in a batch (see batcher), and returns its result.
func (b *batcher[K, Req, Res]) do(ctx context.Context, k K, req Req) Res {
	b.mu.Lock()
	q := b.queue(k)
	if q.flying < b.depth && q.sending == q.flying && len(q.calls) == 0 {
		q.flying++
		q.sending++
		b.mu.Unlock()
		return b.alone(ctx, k, q, req)
	}
	c := &call[Req, Res]{ctx: ctx, req: req, done: make(chan struct{})}
	q.calls = append(q.calls, c)
	open := q.flying < b.depth && enough(len(q.calls), q.flying, q.sending)
	if open {
		q.flying++
	}
	b.mu.Unlock()
	if open {
		b.spawn(func() { b.drain(k, q, nil) })
	}
	return b.wait(c)
}

// alone runs req, a call alone of key k in flight in q, and ends its place, also when it
// panics (which then goes on): a caller that recovers leaves the key's queue as it was.
func (b *batcher[K, Req, Res]) alone(ctx context.Context, k K, q *queue[Req, Res], req Req) Res {
	defer b.release(k, q, 1)
	return b.one(ctx, k, req)
}

// wait returns the result of c once its batch is done, or ended's result once its ctx has
// ended, whichever comes first, and ended's when both have: the batch's call to Redis ran
// under a context of its own (see batchContext), which ends only when the context of every
// call of the batch has, and whose error says "canceled" where c's says why.
func (b *batcher[K, Req, Res]) wait(c *call[Req, Res]) Res {
	select {
	case <-c.done:
	case <-c.ctx.Done():
	}
	if err := c.ctx.Err(); err != nil {
		return b.ended(err)
	}
	return c.res
}

// queue returns the queue of key k, made if k has none. b.mu is held.
func (b *batcher[K, Req, Res]) queue(k K) *queue[Req, Res] {
	q := b.queues[k]
	if q == nil {
		if b.queues == nil {
			b.queues = make(map[K]*queue[Req, Res])
		}
		q = new(queue[Req, Res])
		b.queues[k] = q
	}
	return q
}

// doGroup runs reqs, at most max of them, in their order, as a group: whole in one batch of key
// k (see batcher), alongside calls of others, so that they apply atomically and in order. A
// caller that finds fewer than depth calls of k in flight takes the place free and drains the
// queue on its goroutine until the group is sent, unless what waits is too few for the place
// (see next): it then leaves the group to a place in flight. It returns the results in the
// order of reqs when all are done, or ended's results once ctx has ended: a request may then
// have been applied or not.
func (b *batcher[K, Req, Res]) doGroup(ctx context.Context, k K, reqs []Req) []Res {
	if len(reqs) == 0 {
		return nil
	}
	calls := make([]call[Req, Res], len(reqs))
	b.mu.Lock()
	q := b.queue(k)
	for i := range calls {
		calls[i] = call[Req, Res]{ctx: ctx, req: reqs[i], done: make(chan struct{})}
		q.calls = append(q.calls, &calls[i])
	}
	calls[0].group = len(calls)
	fly := q.flying < b.depth
	if fly {
		q.flying++
	}
	b.mu.Unlock()
	if fly {
		// The drain of this place in flight, until the group is sent (or dropped): what waits
		// after it, of other callers, goes to a drain of its own.
		b.drain(k, q, &calls[len(calls)-1])
	}
	res := make([]Res, len(calls))
	for i := range calls {
		res[i] = b.wait(&calls[i])
	}
	return res
}

// isDone reports whether done is closed.
func isDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// enough reports whether waiting calls are enough to fill a place, with places in flight
// sending calls: at least half as many as a place sends on average (any, when none sends).
func enough(waiting, places, sending int) bool {
	return 2*waiting*places >= sending
}

// release ends a place in flight of key k, whose queue is q, that has sent sent calls: a
// goroutine runs the calls that wait in q, if any, in its stead (see next); otherwise it
// lands (see land).
func (b *batcher[K, Req, Res]) release(k K, q *queue[Req, Res], sent int) {
	b.mu.Lock()
	q.sending -= sent
	if len(q.calls) == 0 {
		b.land(k, q)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.spawn(func() { b.drain(k, q, nil) })
}

// land ends a call or batch in flight of key k, whose queue is q, with nothing waiting: q is
// forgotten when nothing of k is in flight, unless the batcher keeps its queues (its keys are
// few, such as the nodes of a cluster, and a call then allocates no queue). b.mu is held.
func (b *batcher[K, Req, Res]) land(k K, q *queue[Req, Res]) {
	if q.flying--; q.flying == 0 && !b.keep {
		delete(b.queues, k)
	}
}

// drain runs the batches of q, the queue of key k, for a place in flight, until next gives the
// place up; or, with last, once last is done, when it ends the place as release does (what
// waits goes to a drain of its own). A batch that panics ends the place too, and the panic
// goes on (its calls wait until their ctx ends): a caller that recovers, when the drain runs
// on its goroutine, leaves the key's queue as it was.
func (b *batcher[K, Req, Res]) drain(k K, q *queue[Req, Res], last *call[Req, Res]) {
	var calls []*call[Req, Res]
	defer func() {
		if calls != nil { // done with last, or panicked
			b.release(k, q, len(calls))
		}
	}()
	for calls = b.next(k, q, 0); calls != nil; calls = b.next(k, q, len(calls)) {
		b.batch(k, calls)
		if last != nil && isDone(last.done) {
			return
		}
	}
}

// next returns the next batch of q, the queue of key k, for a place that has just sent sent
// calls (0 for a new drain), or nil after giving the place up (see land): when nothing waits,
// or fewer calls than enough says (another place takes them when it ends). After a batch of
// several calls, with b.yield, it yields once first, for their callers' next calls (see
// batcher).
func (b *batcher[K, Req, Res]) next(k K, q *queue[Req, Res], sent int) []*call[Req, Res] {
	if sent > 1 && b.yield {
		runtime.Gosched()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	q.sending -= sent
	if !enough(len(q.calls), q.flying-1, q.sending) {
		b.land(k, q)
		return nil
	}
	var calls []*call[Req, Res]
	for len(q.calls) > 0 && len(calls) < b.max {
		c := q.calls[0]
		if len(calls) > 0 && c.group > b.max-len(calls) {
			break // a group goes whole, in the next batch
		}
		// A call, or a group whole: its calls share a ctx, read once, so that a ctx that ends
		// meanwhile cannot split it.
		n := max(c.group, 1)
		taken := q.calls[:n:n]
		q.calls = q.calls[n:]
		if err := c.ctx.Err(); err != nil {
			// Its caller is gone: drop it unsent, so that it is certainly not applied.
			for _, d := range taken {
				d.res = b.ended(err)
				close(d.done)
			}
		} else {
			calls = append(calls, taken...)
		}
		clear(taken)
	}
	if calls == nil {
		b.land(k, q)
	}
	q.sending += len(calls)
	return calls
}

// batchContext returns a context for the Redis call of a batch, calls, and its cancel: it keeps
// the values of the first call's context and is cancelled when the context of every call has
// ended, so that the call to Redis is abandoned only when nobody waits for it any more. Call
// cancel when the batch is done.
func batchContext[Req, Res any](calls []*call[Req, Res]) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(calls[0].ctx))
	var waiting atomic.Int32
	waiting.Store(int32(len(calls)))
	stops := make([]func() bool, len(calls))
	for i, c := range calls {
		stops[i] = context.AfterFunc(c.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}
