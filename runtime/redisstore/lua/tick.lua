-- tick.lua: ARGV ARG_EPOCH, ARG_RETENTION, ARG_MAX_EVENTS, TICK_WATCHER (the ticking backend's
-- watcher, or '').
-- The pumps' call when an expiry is due: expires a batch of due entries, trims the stream,
-- keeps the keys alive, and publishes the tenant's notice if it expired any and a backend
-- other than the ticking one watches the tenant (as write.lua decides; the ticking pump reads
-- the events itself).
-- Returns {epoch, head version, now, next due time (no expiry is earlier), entries expired}.
local ctx, bad = open(ARGV[ARG_EPOCH], tonumber(ARGV[ARG_RETENTION]), tonumber(ARGV[ARG_MAX_EVENTS]))
bad = bad or check_type(K_EXP, KEY_EXP, 'zset') or check_type(K_EVENTS, KEY_EVENTS, 'stream') or reconcile(ctx)
if bad then
  return bad
end
finish(ctx, 0)
if ctx.seq ~= ctx.seq0 then
  local w = redis.call('HMGET', K_STATE, META_WATCHER, META_WATCHED, META_SHARED)
  local watched, shared = tonumber(w[2] or '0') or NEVER, tonumber(w[3] or '0') or NEVER
  if shared >= ctx.now or watched >= ctx.now and w[1] ~= ARGV[TICK_WATCHER] then
    notify(ctx)
  end
end
return {ctx.epoch, ctx.seq, ctx.now, ctx.due, ctx.expired or 0}
