package redisstore

import (
	"context"
	"fmt"

	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/redis/go-redis/v9"
)

// maxOpenBatch is the most reads of new subscriptions one pipeline carries.
const maxOpenBatch = 64

// openReq is the read of one Subscribe (open.lua: the tenant's epoch, head and due time, its
// meta made when absent), and openRes its result.
type (
	openReq struct {
		keys []string
		l    backend.Limits
	}
	openRes struct {
		r   readResult
		err error
	}
	openCall = call[openReq, openRes]
)

// openBatcher returns the batcher of the reads of b's new subscriptions, whatever their
// tenants, by node (see Backend.node): a read with none of its node in flight runs at once, on
// the caller's goroutine; reads that arrive while one is in flight wait, and a goroutine sends
// them together, up to maxOpenBatch opens in one pipeline, until none wait: one open.lua call
// per tenant of the batch, whose result its opens share. Under a burst of opens, the round
// trip and the system calls on both sides are shared by the batch, and the server runs one
// script per tenant, in its hash slot: when the presence example's 5,000 pages of one room
// open their streams at once, the run makes 113–295 script calls (its writes too) instead of
// 5,081–5,796 (docs/PERFORMANCE.md). In a cluster, a slow master holds up only the opens of
// its own slots.
func openBatcher(b *Backend) batcher[*redis.Client, openReq, openRes] {
	return batcher[*redis.Client, openReq, openRes]{
		max:   maxOpenBatch,
		depth: 1,
		keep:  true,
		one: func(ctx context.Context, _ *redis.Client, req openReq) openRes {
			return openResult(b.scripts.runCmd(ctx, openScript, b.openCmd(req.keys, req.l)))
		},
		batch: func(_ *redis.Client, calls []*openCall) {
			ctx, done := batchContext(calls)
			defer done()
			// The calls of one tenant share one read: each was made before the batch is sent,
			// so its result is as fresh as one of the call's own.
			first := make(map[string]int, len(calls)) // by state key: the tenant's read in cmds
			read := make([]int, len(calls))
			cmds := make([][]any, 0, len(calls))
			for i, c := range calls {
				k, ok := first[c.req.keys[keyState]]
				if !ok {
					k = len(cmds)
					first[c.req.keys[keyState]] = k
					cmds = append(cmds, b.openCmd(c.req.keys, c.req.l))
				}
				read[i] = k
			}
			res := make([]openRes, len(cmds))
			for i, cmd := range b.scripts.pipeline(ctx, openScript, cmds, newScriptCmd) {
				res[i] = openResult(cmd.(*redis.Cmd))
			}
			for i, c := range calls {
				c.res = res[read[i]]
				close(c.done)
			}
		},
		ended: func(err error) openRes { return openRes{err: err} },
		spawn: b.spawn,
	}
}

// openRead reads the tenant whose keys are keys for a new subscription: its epoch, last
// version and due time, and the server's time (see openBatcher); the result has no events,
// and no oldest retained version (first). A waiting read returns when its batch is read or
// when its ctx ends, whichever comes first.
func (b *Backend) openRead(ctx context.Context, keys []string, l backend.Limits) (readResult, error) {
	res := b.opens.do(ctx, b.node(ctx, keys[0]), openReq{keys, l})
	return res.r, res.err
}

// openResult is the result of cmd, a call of open.lua that was run.
func openResult(cmd *redis.Cmd) openRes {
	res, err := cmd.Slice()
	if err != nil {
		return openRes{err: scriptError(err)}
	}
	r, err := decodeOpen(res)
	return openRes{r, err}
}

// openCmd returns the command of a call of open.lua on the tenant whose keys are keys (see
// scriptCmd), which registers b's readers there.
func (b *Backend) openCmd(keys []string, l backend.Limits) []any {
	cmd, a := scriptCmd(keys, openArgs)
	setHead(a, l)
	a.set(openWatcher, b.watcherID)
	a.set(openWatchFor, b.watchFor().Milliseconds())
	return cmd
}

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
