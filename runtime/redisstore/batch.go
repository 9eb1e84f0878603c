package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
)

// maxBatch is the most upserts one script call applies.
const maxBatch = 64

// upsertCall is one Upsert waiting for its batch.
type upsertCall struct {
	ctx   context.Context // the caller's: a call whose ctx ends before its batch is sent is dropped
	req   backend.UpsertRequest
	entry backend.Entry
	err   error
	done  chan struct{} // closed when entry or err is set
}

// upsertQueue batches the upserts of one (store ID, tenant): while one script call is in
// flight, the upserts that arrive wait and then go together in the next call. This is group
// commit: a lone upsert goes at once, and under load the fixed cost of a call (the round trip,
// EVALSHA, TIME, reading and writing the tenant's meta) is shared by up to maxBatch upserts.
type upsertQueue struct {
	pending []*upsertCall
	busy    bool // a goroutine is applying this queue's batches
}

// enqueue adds call to its tenant's queue and, if no batch is in flight, starts a goroutine
// that applies the queue's batches until it is empty. The callers wait for their own call (or
// their context) in Upsert, so no caller waits for another's batch beyond its own deadline.
func (st *store) enqueue(tenant string, call *upsertCall) {
	b, k := st.b, tenantKey{st.id, tenant}
	b.qmu.Lock()
	q := b.queues[k]
	if q == nil {
		q = &upsertQueue{}
		b.queues[k] = q
	}
	q.pending = append(q.pending, call)
	lead := !q.busy
	q.busy = true
	b.qmu.Unlock()
	if !lead {
		return
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		st.drain(tenant, q)
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		st.drain(tenant, q)
	}()
}

// next returns the next batch of q, or nil after marking q idle and forgetting it. Only the
// goroutine that made q busy calls it.
func (st *store) next(tenant string, q *upsertQueue) []*upsertCall {
	st.b.qmu.Lock()
	defer st.b.qmu.Unlock()
	if len(q.pending) == 0 {
		st.idle(tenant, q)
		return nil
	}
	var batch []*upsertCall
	for len(q.pending) > 0 && len(batch) < maxBatch {
		c := q.pending[0]
		q.pending = q.pending[1:]
		if err := c.ctx.Err(); err != nil {
			// Its caller is gone: drop it unsent, so that it is certainly not applied.
			c.err = fmt.Errorf("redisstore: upsert %q: %w", c.req.Key, err)
			close(c.done)
			continue
		}
		batch = append(batch, c)
	}
	if batch == nil {
		st.idle(tenant, q)
	}
	return batch
}

// idle marks q idle and forgets it; b.qmu is held and q has nothing pending.
func (st *store) idle(tenant string, q *upsertQueue) {
	q.busy = false
	q.pending = nil
	delete(st.b.queues, tenantKey{st.id, tenant})
}

// drain applies q's batches until it is empty.
func (st *store) drain(tenant string, q *upsertQueue) {
	for batch := st.next(tenant, q); batch != nil; batch = st.next(tenant, q) {
		st.apply(tenant, batch)
	}
}

// apply runs the upsert script for a batch and completes its calls. The script call is
// abandoned only when every caller of the batch has stopped waiting (their contexts ended).
func (st *store) apply(tenant string, batch []*upsertCall) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(batch[0].ctx))
	defer cancel()
	var waiting atomic.Int32
	waiting.Store(int32(len(batch)))
	for _, c := range batch {
		stop := context.AfterFunc(c.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	reqs := make([]backend.UpsertRequest, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	res, err := runUpsert(ctx, st.b.client, st.keys(tenant), st.limits, reqs)
	var last uint64
	for i, c := range batch {
		if err != nil {
			c.err = fmt.Errorf("redisstore: upsert %q: %w", c.req.Key, err)
		} else {
			c.entry, c.err = res[i].entry, res[i].err
			last = max(last, c.entry.Version)
		}
		close(c.done)
	}
	if last > 0 {
		st.b.noteVersion(tenantKey{st.id, tenant}, last)
	}
}
