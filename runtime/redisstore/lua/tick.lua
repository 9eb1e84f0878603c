-- tick.lua: ARGV ARG_EPOCH, ARG_RETENTION, ARG_MAX_EVENTS, TICK_NOTIFY (the notice's command).
-- The pumps' call when an expiry is due: expires a batch of due entries, trims the stream,
-- keeps the keys alive, and publishes the tenant's notice if it expired any.
-- Returns {epoch, head version, now, next due time (no expiry is earlier), entries expired}.
local ctx = open(ARGV[ARG_EPOCH], tonumber(ARGV[ARG_RETENTION]), tonumber(ARGV[ARG_MAX_EVENTS]))
reconcile(ctx)
finish(ctx, 0, false)
if ctx.seq ~= ctx.seq0 then
  notify(ctx, ARGV[TICK_NOTIFY])
end
return {ctx.epoch, ctx.seq, ctx.now, ctx.due, ctx.expired or 0}
