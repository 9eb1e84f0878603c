package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// maxBatch is the most writes one script call applies.
const maxBatch = 64

// writeDepth is the most script calls of a tenant's writes in flight at once (see batcher):
// two, so that the server runs one batch while the client completes the one before and
// gathers the next. More only splits the waiting writes into smaller batches: in
// BenchmarkTouch and BenchmarkUpsert at 32 in flight, 3 and 4 were no faster than 2.
const writeDepth = 2

// writeCall is one write waiting for its batch.
type writeCall = call[writeOp, writeResult]

// writeBatcher returns the batcher of the writes of st, by tenant.
func writeBatcher(st *store) batcher[string, writeOp, writeResult] {
	return batcher[string, writeOp, writeResult]{
		max:   maxBatch,
		depth: writeDepth,
		yield: true,
		one:   st.writeOne,
		batch: st.apply,
		ended: func(err error) writeResult { return writeResult{err: err} },
		spawn: st.b.spawn,
	}
}

// write applies op to the tenant, by st.writes (see batcher): a write that finds fewer than
// writeDepth calls of its tenant in flight, each alone, and none waiting runs at once, on the
// caller's goroutine, as a script call of its own, under the caller's ctx; under contention, the
// writes wait and are applied in the order they arrive, and the fixed cost of a call (the
// round trip, FCALL, TIME, reading and writing the tenant's meta) is shared by up to maxBatch
// writes. Calls in flight together may take effect in either order (see batcher). A waiting write
// returns when its batch is applied or when its ctx ends, whichever comes first; one whose ctx
// ends before its batch is sent is not applied.
func (st *store) write(ctx context.Context, tenant string, op writeOp) writeResult {
	return st.writes.do(ctx, tenant, op)
}

// writeOne applies op alone, in a script call of its own under ctx.
func (st *store) writeOne(ctx context.Context, tenant string, op writeOp) writeResult {
	st.b.obs.WriteBatch(st.id, tenant, 1)
	ops := []writeOp{op}
	forks := st.forks.Load()
	r, tail, err := st.writeOps(ctx, tenant, ops)
	st.settle(tenant, ops, r, tail, forks, err)
	if err != nil {
		return writeResult{err: err}
	}
	return r[0]
}

// writeOps applies ops to the tenant in one call of write.lua, as runWrite does, sending the
// epoch the store last saw the tenant in and keeping the one the call returns, with the time
// of its latest write (see tenantSlot). The call goes through the backend's script pipeline
// (see scriptBatcher).
//
// A new epoch made less than the event retention after the slot's latest write is a state
// that Redis lost (see [backend.Observer]): after a write, the tenant's keys live at least
// the retention.
func (st *store) writeOps(ctx context.Context, tenant string, ops []writeOp) ([]writeResult, writeTail, error) {
	s := st.slot(tenant)
	cmd, _ := writeCmd(s.keys, s.epoch, st.b.watcherID, st.limits, ops)
	r := st.b.scriptCalls.do(ctx, st.b.node(ctx, s.keys[0]), cmd)
	res, tail, err := writeReply(r.res, r.err, s.epoch, st.limits, ops)
	if err != nil {
		return res, tail, err
	}
	// The time of the call: a quiet touch keeps the entry's UpdatedAt, but its expiry is the
	// call's time plus its TTL (write.lua), and it keeps the tenant's keys alive as any write.
	var latest int64
	for i, w := range res {
		if w.ok {
			at := w.updatedAt
			if ops[i].code == opTouchQuiet {
				at = w.expiresAt - ops[i].ttl.Milliseconds()
			}
			latest = max(latest, at)
		}
	}
	if res[0].epoch == s.epoch {
		for {
			last := s.last.Load()
			if latest <= last || s.last.CompareAndSwap(last, latest) {
				break
			}
		}
		return res, tail, err
	}
	// The slot of the new epoch takes the memos over; unless the slot was replaced meanwhile
	// (by this tenant's own new epoch, or by another tenant's slot).
	ns := &tenantSlot{tenant: s.tenant, keys: s.keys, epoch: res[0].epoch, at: s.at}
	ns.memos.Store(s.memos.Load())
	ns.last.Store(latest)
	if s.at.CompareAndSwap(s, ns) && s.epoch != "" {
		made, ok := backend.EpochTime(res[0].epoch)
		if last := s.last.Load(); ok && last > 0 && made.UnixMilli()-last < st.limits.EventRetention.Milliseconds() {
			st.b.obs.StateLost(st.id, tenant)
		}
	}
	return res, tail, err
}

// scriptCall is a call of write.lua, its command (of writeCmd), waiting for its pipeline.
type scriptCall = call[[]any, scriptRes]

// scriptRes is the reply of a call of write.lua, or its error.
type scriptRes struct {
	res []int64
	err error
}

// maxPipeline is the most calls of write.lua one pipeline sends.
const maxPipeline = 64

// pipelineDepth is the most calls of write.lua, or pipelines of them, of a Backend in flight
// at once to one node, whatever their tenants (see scriptBatcher). In
// BenchmarkUpsert/c=32/upsert-tenants, 1 took 1.3-1.4 times as long as 2, 4 or 8, which were
// alike; 4 lets a few writes in flight go without waiting for one another.
const pipelineDepth = 4

// scriptBatcher returns the batcher of the calls of write.lua of b, of all its stores and
// tenants, by node (see node): a call with fewer than pipelineDepth of its node in flight runs
// at once, on the caller's goroutine; those that arrive otherwise wait, and go together, up to
// maxPipeline in one pipeline, when one in flight ends. Each call is still a script of its own
// on the server, in its tenant's hash slot, but a pipeline of them shares a round trip and the
// system calls on both sides: under writes to many tenants at once, those are much of a
// write's cost (BenchmarkUpsert/c=32/upsert-tenants: 32 writes in flight over 1,000 tenants).
// In a cluster, a slow node holds up only the writes to its own slots.
func scriptBatcher(b *Backend) batcher[*redis.Client, []any, scriptRes] {
	return batcher[*redis.Client, []any, scriptRes]{
		max:   maxPipeline,
		depth: pipelineDepth,
		keep:  true,
		one: func(ctx context.Context, _ *redis.Client, cmd []any) scriptRes {
			res, err := b.scripts.runInts(ctx, writeScript, cmd)
			return scriptRes{res, err}
		},
		batch: func(_ *redis.Client, calls []*scriptCall) {
			cmdOf := func(cmd []any) []any { return cmd }
			pipelineCalls(b.scripts, writeScript, calls, cmdOf, newIntsCmd, func(c *scriptCall, cmd redis.Cmder) {
				c.res.res, c.res.err = cmd.(onceIntsCmd).Result()
			})
		},
		ended: func(err error) scriptRes { return scriptRes{err: err} },
		spawn: b.spawn,
	}
}

// node returns the client of the cluster's master that serves key, as the cluster client last
// knew it, or nil when b's client is not a cluster's (or knows no master for key): the key of
// the pipelines of writes and opens (see scriptBatcher, openBatcher). The calls are still
// routed by the cluster client, each on its own, so a node that is out of date only groups a
// call with others of another node.
func (b *Backend) node(ctx context.Context, key string) *redis.Client {
	if c, ok := b.client.(*redis.ClusterClient); ok {
		if n, err := c.MasterForKey(ctx, key); err == nil {
			return n
		}
	}
	return nil
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

// apply runs the write script for a batch and completes its calls. The script call is
// abandoned only when every caller of the batch has stopped waiting (their contexts ended).
func (st *store) apply(tenant string, batch []*writeCall) {
	ctx, done := batchContext(batch)
	defer done()
	ops := make([]writeOp, len(batch))
	for i, c := range batch {
		ops[i] = c.req
	}
	st.b.obs.WriteBatch(st.id, tenant, len(batch))
	forks := st.forks.Load()
	res, tail, err := st.writeOps(ctx, tenant, ops)
	st.settle(tenant, ops, res, tail, forks, err) // before the writes return
	for i, c := range batch {
		if err != nil {
			c.res.err = err
		} else {
			c.res = res[i]
		}
	}
	for _, c := range batch {
		close(c.done)
	}
}

// settle reports the error of a call of write.lua on ops, if any, or the writes it refused,
// and tells the tenant's pump, if any, how the call ended: of the writes that returned, with
// their results res (each with the tenant's epoch), the call's tail and st.forks as it was
// before the call was sent (see pump.noteWrites),
// also when every write failed, as its script may have expired entries; or, when the call
// failed, that it may have been applied with no notice to tell this backend's readers (see
// the package doc, "Notices"), so the pump reads, and that it may have failed on junk that no
// read of the pump sees (see pump.junk).
func (st *store) settle(tenant string, ops []writeOp, res []writeResult, tail writeTail, forks uint64, err error) {
	st.b.failed(tenantKey{st.id, tenant}, "write", err)
	for _, r := range res {
		if r.err != nil { // a conflict or the capacity: see decodeWrite
			st.b.obs.Refused(st.id, tenant, r.err)
		}
	}
	p := st.pump(tenant)
	if p == nil {
		return
	}
	if err != nil {
		p.junk(err)
		p.nudge()
		return
	}
	var last uint64
	for _, r := range res {
		last = max(last, r.version)
	}
	p.noteWrites(res[0].epoch, last, ops, res, tail, forks)
}

// pump returns the tenant's pump in the backend, or nil when it has no readers there.
func (st *store) pump(tenant string) *pump {
	b := st.b
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pumps[tenantKey{st.id, tenant}]
}

// wrap returns err wrapped with the operation and key it is of; a ConflictError or a
// CapacityError (which name the key) as it is, as every backend returns it.
func wrap(what, key string, err error) error {
	if _, ok := err.(*backend.ConflictError); ok || errors.Is(err, backend.ErrCapacity) {
		return err
	}
	return fmt.Errorf("redisstore: %s %q: %w", what, key, err)
}
