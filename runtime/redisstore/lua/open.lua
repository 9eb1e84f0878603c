-- open.lua: ARGV ARG_EPOCH (an epoch candidate), ARG_RETENTION (ms). A new subscription's
-- start: read.lua without events, for the hot path of opening readers, standing alone without
-- lib.lua (as write.lua and get.lua do), which every call would define anew.
-- Returns {epoch, head version, now, due}: the tenant's epoch and last version, the server's
-- time and the due time (no expiry is earlier). A missing meta is made as lib.lua's open makes
-- it (an epoch of the server's time and the candidate's random digits; whatever is left of the
-- tenant's other keys dropped), and expires with the retention unless a write keeps it.
local K_STATE, K_EXP, K_EVENTS = KEYS[KEY_STATE], KEYS[KEY_EXP], KEYS[KEY_EVENTS]
local m = redis.call('HMGET', K_STATE, META_EPOCH, META_SEQ, META_DUE, META_TRIM, META_KEXP)
local bad = check_meta(m)
if bad then
  return bad
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch, seq, due = m[1], tonumber(m[2] or '0'), tonumber(m[3] or '0')
if not epoch then
  epoch = string.format('%012x', now) .. string.sub(ARGV[ARG_EPOCH], EPOCH_TIME_DIGITS + 1)
  redis.call('DEL', K_EXP, K_EVENTS)
  redis.call('HSET', K_STATE, META_EPOCH, epoch)
  redis.call('PEXPIRE', K_STATE, tonumber(ARGV[ARG_RETENTION]))
  due = NEVER -- the expiry set is gone
end
if due == 0 then
  -- No due time in the meta (made just now, say): the earliest expiry, if any.
  -- A junk score makes it due now: the pump's tick then reports the junk (ErrCorrupt).
  local nxt = redis.call('ZRANGE', K_EXP, 0, 0, 'WITHSCORES')
  due = NEVER
  if check_due(nxt) then
    due = now
  elseif #nxt > 0 then
    due = tonumber(nxt[2])
  end
end
return {epoch, seq, now, due}
