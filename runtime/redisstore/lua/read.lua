-- read.lua: ARGV ARG_EPOCH (an epoch candidate), ARG_RETENTION (ms), READ_CURSOR_EPOCH and
-- READ_CURSOR_SEQ (the cursor), READ_COUNT (the most events to return).
-- Returns {epoch, head version, first retained version, now, events}: the events after the
-- cursor (from the oldest retained one if the cursor is of another epoch), as XRANGE gives
-- them. The first retained version is head+1 when the stream is empty. A missing meta is
-- created, and expires with the retention unless a write keeps it.
local ctx, bad = open(ARGV[ARG_EPOCH], tonumber(ARGV[ARG_RETENTION]), 0)
if bad then
  return bad
end
if #ctx.put > 0 then
  redis.call('HSET', K_STATE, unpack(ctx.put))
  redis.call('PEXPIRE', K_STATE, ctx.ret)
end
local first = ctx.seq + 1
local oldest = redis.call('XRANGE', K_EVENTS, '-', '+', 'COUNT', 1)
if #oldest > 0 then
  first = tonumber(string.match(oldest[1][1], '^(%d+)'))
end
local events = {}
local count = tonumber(ARGV[READ_COUNT])
if count > 0 then
  local start = '-'
  if ARGV[READ_CURSOR_EPOCH] == ctx.epoch then
    start = num(tonumber(ARGV[READ_CURSOR_SEQ]) + 1) .. '-0'
  end
  events = redis.call('XRANGE', K_EVENTS, start, '+', 'COUNT', count)
end
return {ctx.epoch, ctx.seq, first, ctx.now, events}
