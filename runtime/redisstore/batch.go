package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime"
)

// maxBatch is the most upserts one script call applies.
const maxBatch = 64

// upsertCall is one Upsert waiting for its batch.
type upsertCall struct {
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

// enqueue adds call to its scope's queue. If no batch is in flight, the caller applies the
// queue's first batch itself (call among it) and hands the rest, if any, to a goroutine.
func (b *Backend) enqueue(ctx context.Context, s runtime.Scope, call *upsertCall) {
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
	// The batch carries other callers' upserts: the leader's cancellation must not fail them.
	ctx = context.WithoutCancel(ctx)
	b.apply(ctx, s, b.next(s, q))
	if !b.more(s, q) {
		return
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		b.drain(ctx, s, q)
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		b.drain(ctx, s, q)
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
	n := min(len(q.pending), maxBatch)
	batch := q.pending[:n:n]
	q.pending = q.pending[n:]
	return batch
}

// more reports whether q has pending upserts, and marks it idle if not.
func (b *Backend) more(s runtime.Scope, q *upsertQueue) bool {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	if len(q.pending) == 0 {
		b.idle(s, q)
		return false
	}
	return true
}

// idle marks q idle and forgets it; b.qmu is held and q has nothing pending.
func (b *Backend) idle(s runtime.Scope, q *upsertQueue) {
	q.busy = false
	q.pending = nil
	delete(b.queues, s)
}

// drain applies q's batches until it is empty.
func (b *Backend) drain(ctx context.Context, s runtime.Scope, q *upsertQueue) {
	for batch := b.next(s, q); batch != nil; batch = b.next(s, q) {
		b.apply(ctx, s, batch)
	}
}

// apply runs the upsert script for a batch and completes its calls.
func (b *Backend) apply(ctx context.Context, s runtime.Scope, batch []*upsertCall) {
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
