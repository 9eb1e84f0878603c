-- tick.lua: ARGV 1 epoch candidate, 2 retention ms, 3 max events.
-- The pump's call: expires a batch of due entries, trims the stream, keeps the keys alive.
-- Returns {epoch, head version, now, next due expiry or -1}.
local ctx = open(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
reconcile(ctx)
finish(ctx, 0, false)
local nxt = redis.call('ZRANGE', K_EXP, 0, 0, 'WITHSCORES')
local due = -1
if #nxt > 0 then
  due = tonumber(nxt[2])
end
return {ctx.epoch, ctx.seq, ctx.now, due}
