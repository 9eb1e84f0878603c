-- tick.lua: ARGV ARG_EPOCH, ARG_RETENTION, ARG_MAX_EVENTS.
-- The pump's call: expires a batch of due entries, trims the stream, keeps the keys alive.
-- Returns {epoch, head version, now, next due time (no expiry is earlier), entries expired}.
local ctx = open(ARGV[ARG_EPOCH], tonumber(ARGV[ARG_RETENTION]), tonumber(ARGV[ARG_MAX_EVENTS]))
reconcile(ctx)
finish(ctx, 0, false)
return {ctx.epoch, ctx.seq, ctx.now, ctx.due, ctx.expired or 0}
