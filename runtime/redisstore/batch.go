package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime"
)

// maxBatch is the most upserts one script call applies.
const maxBatch = 64

// upsertCall is one Upsert waiting for its batch.
type upsertCall struct {
	ctx   context.Context // the caller's: a call whose ctx ends before its batch is sent is dropped
	req   runtime.UpsertRequest
	entry runtime.RawEntry
	err   error
	done  chan struct{} // closed when entry or err is set
}

// upsertQueue batches the upserts of one scope: while one script call is in flight, the
// upserts that arrive wait and then go together in the next call. This is group commit: a
// lone upsert goes at once, and under load the fixed cost of a call (the round trip, EVALSHA,
// TIME, reading and writing the tenant's meta) is shared by up to maxBatch upserts.
type upsertQueue struct {
	pending []*upsertCall
	busy    bool // a goroutine is applying this queue's batches
}

// enqueue adds call to its scope's queue and, if no batch is in flight, starts a goroutine
// that applies the queue's batches until it is empty. The callers wait for their own call (or
// their context) in Upsert, so no caller waits for another's batch beyond its own deadline.
func (b *Backend) enqueue(s runtime.Scope, call *upsertCall) {
	b.qmu.Lock()
	q := b.queues[s]
	if q == nil {
		q = &upsertQueue{}
		b.queues[s] = q
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
		b.drain(s, q)
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		b.drain(s, q)
	}()
}

// next returns the next batch of q, or nil after marking q idle and forgetting it. Only the
// goroutine that made q busy calls it.
func (b *Backend) next(s runtime.Scope, q *upsertQueue) []*upsertCall {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	if len(q.pending) == 0 {
		b.idle(s, q)
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
		b.idle(s, q)
	}
	return batch
}

// idle marks q idle and forgets it; b.qmu is held and q has nothing pending.
func (b *Backend) idle(s runtime.Scope, q *upsertQueue) {
	q.busy = false
	q.pending = nil
	delete(b.queues, s)
}

// drain applies q's batches until it is empty.
func (b *Backend) drain(s runtime.Scope, q *upsertQueue) {
	for batch := b.next(s, q); batch != nil; batch = b.next(s, q) {
		b.apply(s, batch)
	}
}

// apply runs the upsert script for a batch and completes its calls. The script call is
// abandoned only when every caller of the batch has stopped waiting (their contexts ended).
func (b *Backend) apply(s runtime.Scope, batch []*upsertCall) {
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
	l := s.Limits.WithDefaults()
	args := make([]any, 0, 4+5*len(batch))
	args = append(args, runtime.NewEpoch(), l.EventRetention.Milliseconds(), l.MaxEvents, l.MaxEntries)
	for _, c := range batch {
		r := &c.req
		args = append(args, r.Key, r.Value, r.TTL.Milliseconds(), int(r.Cond.Kind), r.Cond.Version)
	}
	res, err := upsertScript.Run(ctx, b.client, b.keys(s), args...).Int64Slice()
	if err == nil && len(res) != 5*len(batch) {
		err = fmt.Errorf("unexpected reply of %d integers for %d upserts", len(res), len(batch))
	}
	var last uint64
	for i, c := range batch {
		if err != nil {
			c.err = fmt.Errorf("redisstore: upsert %q: %w", c.req.Key, err)
		} else {
			c.entry, c.err = upsertResult(c.req, res[5*i:5*i+5], l.MaxEntries)
			last = max(last, c.entry.Version)
		}
		close(c.done)
	}
	if last > 0 {
		b.noteVersion(s, last)
	}
}

// upsertResult interprets the script's five integers for one upsert.
func upsertResult(req runtime.UpsertRequest, r []int64, maxEntries int) (runtime.RawEntry, error) {
	switch r[0] {
	case -1:
		return runtime.RawEntry{}, fmt.Errorf("redisstore: upsert %q: %w", req.Key, runtime.ErrConflict)
	case -2:
		return runtime.RawEntry{}, fmt.Errorf("redisstore: upsert %q: %w: limit %d", req.Key, runtime.ErrCapacity, maxEntries)
	}
	return runtime.RawEntry{
		Key:       req.Key,
		Value:     req.Value,
		Version:   uint64(r[1]),
		CreatedAt: time.UnixMilli(r[2]),
		UpdatedAt: time.UnixMilli(r[3]),
		ExpiresAt: time.UnixMilli(r[4]),
	}, nil
}
