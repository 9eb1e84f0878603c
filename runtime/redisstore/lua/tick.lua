-- tick.lua: ARGV 1 epoch candidate, 2 retention ms, 3 max events.
-- The pump's call: expires a batch of due entries, trims the stream, keeps the keys alive.
-- Returns {epoch, head version, now, next due time (no expiry is earlier)}.
local ctx = open(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
reconcile(ctx)
finish(ctx, 0, false)
return {ctx.epoch, ctx.seq, ctx.now, ctx.due}
