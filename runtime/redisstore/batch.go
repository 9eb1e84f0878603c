package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// maxBatch is the most writes one script call applies.
const maxBatch = 64

// writeCall is one write waiting for its batch.
type writeCall struct {
	ctx  context.Context // the caller's: a call whose ctx ends before its batch is sent is dropped
	op   writeOp
	res  writeResult
	done chan struct{} // closed when res is set
}

// writeQueue holds the writes of one (store ID, tenant) that wait while a script call of the
// tenant is in flight. It exists while a call is in flight.
type writeQueue struct {
	pending []*writeCall
}

// write applies op to the tenant: upserts, touches and removes of one tenant are applied in the
// order they arrive. A write with no other write of its tenant in flight runs at once, on the
// caller's goroutine, as a script call of its own, under the caller's ctx. Writes that arrive
// while a call is in flight wait in the tenant's queue, and go together in the next call (group
// commit), made by a goroutine that drains the queue: under contention, the fixed cost of a
// call (the round trip, FCALL, TIME, reading and writing the tenant's meta) is shared by up
// to maxBatch writes. A waiting write returns when its batch is applied or when its ctx ends,
// whichever comes first; one whose ctx ends before its batch is sent is not applied.
func (st *store) write(ctx context.Context, tenant string, op writeOp) writeResult {
	b, k := st.b, tenantKey{st.id, tenant}
	b.qmu.Lock()
	if q := b.queues[k]; q != nil {
		call := &writeCall{ctx: ctx, op: op, done: make(chan struct{})}
		q.pending = append(q.pending, call)
		b.qmu.Unlock()
		select {
		case <-call.done:
			return call.res
		case <-ctx.Done():
			return writeResult{err: ctx.Err()}
		}
	}
	q := &writeQueue{}
	b.queues[k] = q
	b.qmu.Unlock()

	res := writeResult{}
	b.obs.WriteBatch(k.id, k.tenant, 1)
	if r, err := runWrite(ctx, b.scripts, st.keys(tenant), st.limits, []writeOp{op}); err != nil {
		res.err = err
		b.failed(k, "write", err)
		b.corrupted(k, err)
	} else {
		res = r[0]
		st.noteWrites(tenant, []writeOp{op}, r)
	}
	st.release(tenant, q)
	return res
}

// release ends the call in flight of the tenant, whose queue is q: a goroutine applies the
// writes that wait in q, if any; otherwise q is forgotten.
func (st *store) release(tenant string, q *writeQueue) {
	b := st.b
	b.qmu.Lock()
	if len(q.pending) == 0 {
		delete(b.queues, tenantKey{st.id, tenant})
		b.qmu.Unlock()
		return
	}
	b.qmu.Unlock()
	b.spawn(func() { st.drain(tenant, q) })
}

// spawn runs f on a goroutine of its own that Close waits for, or on this one once the
// backend is closed: the drains of the batched calls (writes, and the reads of new
// subscriptions), which complete every call that waits.
func (b *Backend) spawn(f func()) {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		f()
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		f()
	}()
}

// batchContext returns a context for the Redis call of a batch of n calls, whose contexts
// ctxOf returns, and its cancel: it keeps the values of the first call's context and is
// cancelled when the context of every call has ended, so that the call to Redis is abandoned
// only when nobody waits for it any more. Call cancel when the batch is done.
func batchContext(n int, ctxOf func(i int) context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctxOf(0)))
	var waiting atomic.Int32
	waiting.Store(int32(n))
	stops := make([]func() bool, n)
	for i := range n {
		stops[i] = context.AfterFunc(ctxOf(i), func() {
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

// next returns the next batch of q, or nil after forgetting q when nothing is pending. Only
// the goroutine that drains q calls it.
func (st *store) next(tenant string, q *writeQueue) []*writeCall {
	st.b.qmu.Lock()
	defer st.b.qmu.Unlock()
	var batch []*writeCall
	for len(q.pending) > 0 && len(batch) < maxBatch {
		c := q.pending[0]
		q.pending = q.pending[1:]
		if err := c.ctx.Err(); err != nil {
			// Its caller is gone: drop it unsent, so that it is certainly not applied.
			c.res.err = err
			close(c.done)
			continue
		}
		batch = append(batch, c)
	}
	if batch == nil {
		delete(st.b.queues, tenantKey{st.id, tenant})
	}
	return batch
}

// drain applies q's batches until it is empty.
func (st *store) drain(tenant string, q *writeQueue) {
	for batch := st.next(tenant, q); batch != nil; batch = st.next(tenant, q) {
		st.apply(tenant, batch)
	}
}

// apply runs the write script for a batch and completes its calls. The script call is
// abandoned only when every caller of the batch has stopped waiting (their contexts ended).
func (st *store) apply(tenant string, batch []*writeCall) {
	ctx, done := batchContext(len(batch), func(i int) context.Context { return batch[i].ctx })
	defer done()
	ops := make([]writeOp, len(batch))
	for i, c := range batch {
		ops[i] = c.op
	}
	st.b.obs.WriteBatch(st.id, tenant, len(batch))
	res, err := runWrite(ctx, st.b.scripts, st.keys(tenant), st.limits, ops)
	st.b.failed(tenantKey{st.id, tenant}, "write", err)
	st.b.corrupted(tenantKey{st.id, tenant}, err)
	for i, c := range batch {
		if err != nil {
			c.res.err = err
		} else {
			c.res = res[i]
		}
	}
	if err == nil {
		st.noteWrites(tenant, ops, res) // before the writes return
	}
	for _, c := range batch {
		close(c.done)
	}
}

// noteWrites tells the tenant's pump, if any, of a batch of writes of this backend that
// returned, ops with their results res (see pump.noteWrites).
func (st *store) noteWrites(tenant string, ops []writeOp, res []writeResult) {
	var last uint64
	var epoch string
	for _, r := range res {
		if r.version > last {
			last, epoch = r.version, r.epoch
		}
	}
	if last == 0 {
		return
	}
	b := st.b
	b.mu.Lock()
	p := b.pumps[tenantKey{st.id, tenant}]
	b.mu.Unlock()
	if p != nil {
		p.noteWrites(epoch, last, ops, res)
	}
}

// wrap returns err wrapped with the operation and key it is of; a ConflictError as it is, as
// every backend returns it.
func wrap(what, key string, err error) error {
	if _, ok := err.(*backend.ConflictError); ok {
		return err
	}
	return fmt.Errorf("redisstore: %s %q: %w", what, key, err)
}
