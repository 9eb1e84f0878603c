-- read.lua: ARGV ARG_EPOCH (an epoch candidate), ARG_RETENTION (ms), READ_CURSOR_EPOCH and
-- READ_CURSOR_SEQ (the cursor), READ_COUNT (the most stream entries to return, and about the most
-- events: see below).
-- Returns {epoch, head version, first retained version, now, entries, due}: the stream entries
-- with events after the cursor (from the oldest retained one if the cursor is of another
-- epoch), as XRANGE gives them (the first may hold events up to the cursor too), and the due
-- time (no expiry is earlier). The first retained version is head+1 when the stream is empty.
-- A missing meta is created, and expires with the retention unless a write keeps it.
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
  -- '<last version>-<n-1>': its first version is last-(n-1).
  local last, more = string.match(oldest[1][1], '^(%d+)-(%d+)$')
  first = math.max(tonumber(last) - tonumber(more), 1)
end
local events = {}
local count = tonumber(ARGV[READ_COUNT])
if count > 0 then
  -- The entries with versions after from, up to from + count + MAX_CALL_EVENTS: about count
  -- events however many each entry holds, and the entry of the version after from.
  local from = first - 1
  if ARGV[READ_CURSOR_EPOCH] == ctx.epoch then
    from = tonumber(ARGV[READ_CURSOR_SEQ])
  end
  local start = num(from + 1) .. '-0'
  events = redis.call('XRANGE', K_EVENTS, start, num(from + count + MAX_CALL_EVENTS), 'COUNT', count)
  if #events == 0 and from < ctx.seq then
    -- An entry of more events than a call adds (none of the scripts'): read it alone.
    events = redis.call('XRANGE', K_EVENTS, start, '+', 'COUNT', 1)
  end
end
local due = ctx.due
if due == 0 then
  -- No due time in the meta (made just now, say): the earliest expiry, if any.
  -- A junk score makes it due now: the pump's tick then reports the junk (ErrCorrupt).
  local nxt = redis.call('ZRANGE', K_EXP, 0, 0, 'WITHSCORES')
  due = NEVER
  if check_due(nxt) then
    due = ctx.now
  elseif #nxt > 0 then
    due = tonumber(nxt[2])
  end
end
return {ctx.epoch, ctx.seq, first, ctx.now, events, due}
