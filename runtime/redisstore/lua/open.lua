-- open.lua: ARGV ARG_EPOCH (an epoch candidate), ARG_RETENTION (ms), OPEN_WATCHER (the
-- backend's watcher), OPEN_WATCH_FOR (ms). A new subscription's
-- start: read.lua without events, for the hot path of opening readers, standing alone without
-- lib.lua (as write.lua and get.lua do), which every call would define anew.
-- Returns {epoch, head version, now, due}: the tenant's epoch and last version, the server's
-- time and the due time (no expiry is earlier). A missing meta is made as lib.lua's open makes
-- it (an epoch of the server's time and the candidate's random digits; whatever is left of the
-- tenant's other keys dropped), and expires with the retention unless a write keeps it.
-- It registers the backend as watching the tenant for OPEN_WATCH_FOR ms, so that the writes of
-- other backends publish their notices: as the tenant's watcher (META_WATCHER, until
-- META_WATCHED) if there is none, or if it is this one or one whose time is up; otherwise as
-- one of the others (META_SHARED, until then). A registration with more than half of its time
-- left is kept as it is: the backend's checks call this script, and most write nothing.
local K_STATE, K_EXP, K_EVENTS = KEYS[KEY_STATE], KEYS[KEY_EXP], KEYS[KEY_EVENTS]
local m = redis.call('HMGET', K_STATE, META_EPOCH, META_SEQ, META_DUE, META_TRIM, META_KEXP, META_WATCHER,
  META_WATCHED, META_SHARED)
local bad = check_meta(m)
if bad then
  return bad
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch, seq, due = m[1], tonumber(m[2] or '0'), tonumber(m[3] or '0')
local me, watch_for = ARGV[OPEN_WATCHER], tonumber(ARGV[OPEN_WATCH_FOR])
if not epoch then
  epoch = string.format('%012x', now) .. string.sub(ARGV[ARG_EPOCH], EPOCH_TIME_DIGITS + 1)
  redis.call('DEL', K_EXP, K_EVENTS)
  redis.call('HSET', K_STATE, META_EPOCH, epoch, META_WATCHER, me, META_WATCHED, string.format('%d', now + watch_for))
  redis.call('PEXPIRE', K_STATE, tonumber(ARGV[ARG_RETENTION]))
  due = NEVER -- the expiry set is gone
else
  local half = now + math.floor(watch_for / 2)
  local watched, shared = tonumber(m[7] or '0') or NEVER, tonumber(m[8] or '0') or NEVER
  if not m[6] or m[6] == me or watched < now then
    if m[6] ~= me or watched < half then
      redis.call('HSET', K_STATE, META_WATCHER, me, META_WATCHED, string.format('%d', now + watch_for))
    end
  elseif shared < half then
    redis.call('HSET', K_STATE, META_SHARED, string.format('%d', now + watch_for))
  end
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
