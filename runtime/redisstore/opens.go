package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// maxOpenBatch is the most reads of new subscriptions one pipeline carries.
const maxOpenBatch = 64

// openCall is the read of one Subscribe (open.lua: the tenant's epoch, head and due time,
// its meta made when absent), waiting for its batch.
type openCall struct {
	ctx  context.Context // the caller's: a call whose ctx ends before its batch is sent is dropped
	keys []string
	l    backend.Limits
	res  readResult
	err  error
	done chan struct{} // closed when res and err are set
}

// opener batches the reads of the Subscribes of a Backend, whatever their tenants: a read
// with none in flight runs at once, on the caller's goroutine; reads that arrive while one is
// in flight wait, and a goroutine sends them together, up to maxOpenBatch open.lua calls in
// one pipeline, until none wait. Under a burst of opens, the round trip and the system calls
// on both sides are shared by the batch; the server still runs one script per open, each in
// the tenant's hash slot (a cluster client splits the pipeline by node).
type opener struct {
	mu      sync.Mutex
	busy    bool // a read or a batch is in flight
	pending []*openCall
}

// openRead reads the tenant whose keys are keys for a new subscription: its epoch, last
// version and due time, and the server's time (see opener); the result has no events, and
// no oldest retained version (first). A waiting read returns when its batch is read or when
// its ctx ends, whichever comes first.
func (b *Backend) openRead(ctx context.Context, keys []string, l backend.Limits) (readResult, error) {
	o := &b.opens
	o.mu.Lock()
	if o.busy {
		c := &openCall{ctx: ctx, keys: keys, l: l, done: make(chan struct{})}
		o.pending = append(o.pending, c)
		o.mu.Unlock()
		select {
		case <-c.done:
			return c.res, c.err
		case <-ctx.Done():
			return readResult{}, ctx.Err()
		}
	}
	o.busy = true
	o.mu.Unlock()
	r, err := runOpen(ctx, b.scripts, keys, l)
	b.releaseOpens()
	return r, err
}

// releaseOpens ends the read in flight: a goroutine reads the waiting ones, if any.
func (b *Backend) releaseOpens() {
	o := &b.opens
	o.mu.Lock()
	if len(o.pending) == 0 {
		o.busy = false
		o.mu.Unlock()
		return
	}
	o.mu.Unlock()
	b.spawn(b.drainOpens)
}

// nextOpens returns the next batch of waiting reads, or nil, when none waits, after marking
// the opener idle. Only the goroutine that drains the opener calls it.
func (b *Backend) nextOpens() []*openCall {
	o := &b.opens
	o.mu.Lock()
	defer o.mu.Unlock()
	var batch []*openCall
	for len(o.pending) > 0 && len(batch) < maxOpenBatch {
		c := o.pending[0]
		o.pending[0] = nil
		o.pending = o.pending[1:]
		if err := c.ctx.Err(); err != nil {
			c.err = err // its caller is gone: not sent
			close(c.done)
			continue
		}
		batch = append(batch, c)
	}
	if batch == nil {
		o.pending = nil
		o.busy = false
	}
	return batch
}

// drainOpens reads the waiting batches until none waits.
func (b *Backend) drainOpens() {
	for batch := b.nextOpens(); batch != nil; batch = b.nextOpens() {
		b.readOpens(batch)
	}
}

// readOpens runs open.lua for each call of batch, in one pipeline, and completes the calls.
// A call the server refused before it ran (the script or library not loaded yet, or no FCALL)
// is run again alone, which loads it. The pipeline is abandoned only when every caller of the
// batch has stopped waiting.
func (b *Backend) readOpens(batch []*openCall) {
	ctx, done := batchContext(len(batch), func(i int) context.Context { return batch[i].ctx })
	defer done()
	if len(batch) == 1 {
		c := batch[0]
		c.res, c.err = runOpen(ctx, b.scripts, c.keys, c.l)
		close(c.done)
		return
	}
	cmds := make([]*redis.Cmd, len(batch))
	_, _ = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range batch {
			cmds[i] = b.scripts.cmd(ctx, openScript, c.keys, openArgs(c.l)...)
			_ = p.Process(ctx, cmds[i])
		}
		return nil
	})
	for i, c := range batch {
		res, err := cmds[i].Slice()
		switch {
		case notRun(err):
			c.res, c.err = runOpen(ctx, b.scripts, c.keys, c.l)
		case err != nil:
			c.err = scriptError(err)
		default:
			c.res, c.err = decodeOpen(res)
		}
		close(c.done)
	}
}

// runOpen runs open.lua on the tenant whose keys are keys.
func runOpen(ctx context.Context, sc *scripter, keys []string, l backend.Limits) (readResult, error) {
	res, err := sc.runCmd(ctx, openScript, keys, openArgs(l)...).Slice()
	if err != nil {
		return readResult{}, scriptError(err)
	}
	return decodeOpen(res)
}

// openArgs returns the arguments of open.lua.
func openArgs(l backend.Limits) args {
	a := make(args, openArgCount)
	a.set(argEpoch, backend.NewEpoch(time.Now()))
	a.set(argRetention, l.EventRetention.Milliseconds())
	return a
}

// openArgCount is the number of arguments of open.lua: argEpoch and argRetention.
const openArgCount = 2

// decodeOpen decodes the reply of open.lua: {epoch, head, now, due}.
func decodeOpen(res []any) (readResult, error) {
	if len(res) != 4 {
		return readResult{}, fmt.Errorf("redisstore: open: %w reply %v", errMalformed, res)
	}
	epoch, head, now, ok := decodePosition(res[0], res[1], res[2])
	due, ok1 := res[3].(int64)
	if !ok || !ok1 {
		return readResult{}, fmt.Errorf("redisstore: open: %w reply %v", errMalformed, res)
	}
	return readResult{epoch: epoch, head: head, now: now, due: due}, nil
}
