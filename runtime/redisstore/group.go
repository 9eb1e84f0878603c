package redisstore

import (
	"context"
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
}

// batcher runs calls in batches by key (group commit): a call with no other call of its key in
// flight runs at once, alone, on the caller's goroutine, under the caller's ctx. Calls that
// arrive while one of their key is in flight wait, and a goroutine runs them in their order,
// at most max at a time, until none of the key waits: under contention, the fixed cost of a
// call (its round trip, and the server's work around it) is shared by the batch. A waiting call
// returns when its batch is done or when its ctx ends, whichever comes first; one whose ctx ends
// before its batch is sent is dropped, unsent.
type batcher[K comparable, Req, Res any] struct {
	max   int
	one   func(ctx context.Context, k K, req Req) Res // runs a call alone
	batch func(k K, calls []*call[Req, Res])          // runs calls together, sets their res and closes their done
	ended func(err error) Res                         // the result of a call whose ctx ended with err
	spawn func(func())                                // runs a drain of waiting calls on a goroutine

	mu     sync.Mutex
	queues map[K]*[]*call[Req, Res] // one per key with a call in flight: the calls that wait
}

// do runs req, alone or in a batch (see batcher), and returns its result.
func (b *batcher[K, Req, Res]) do(ctx context.Context, k K, req Req) Res {
	b.mu.Lock()
	if q := b.queues[k]; q != nil {
		c := &call[Req, Res]{ctx: ctx, req: req, done: make(chan struct{})}
		*q = append(*q, c)
		b.mu.Unlock()
		select {
		case <-c.done:
			return c.res
		case <-ctx.Done():
			return b.ended(ctx.Err())
		}
	}
	if b.queues == nil {
		b.queues = make(map[K]*[]*call[Req, Res])
	}
	q := new([]*call[Req, Res])
	b.queues[k] = q
	b.mu.Unlock()
	res := b.one(ctx, k, req)
	b.release(k, q)
	return res
}

// release ends the call in flight of key k, whose queue is q: a goroutine runs the calls that
// wait in q, if any; otherwise q is forgotten.
func (b *batcher[K, Req, Res]) release(k K, q *[]*call[Req, Res]) {
	b.mu.Lock()
	if len(*q) == 0 {
		delete(b.queues, k)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.spawn(func() { b.drain(k, q) })
}

// drain runs the batches of q, the queue of key k, until it is empty.
func (b *batcher[K, Req, Res]) drain(k K, q *[]*call[Req, Res]) {
	for calls := b.next(k, q); calls != nil; calls = b.next(k, q) {
		b.batch(k, calls)
	}
}

// next returns the next batch of q, or nil after forgetting q when nothing waits. Only the
// goroutine that drains q calls it.
func (b *batcher[K, Req, Res]) next(k K, q *[]*call[Req, Res]) []*call[Req, Res] {
	b.mu.Lock()
	defer b.mu.Unlock()
	var calls []*call[Req, Res]
	for len(*q) > 0 && len(calls) < b.max {
		c := (*q)[0]
		(*q)[0] = nil
		*q = (*q)[1:]
		if err := c.ctx.Err(); err != nil {
			// Its caller is gone: drop it unsent, so that it is certainly not applied.
			c.res = b.ended(err)
			close(c.done)
			continue
		}
		calls = append(calls, c)
	}
	if calls == nil {
		delete(b.queues, k)
	}
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
