-- remove.lua: ARGV 1 epoch candidate, 2 retention ms, 3 max events, 4 key, 5 reason,
-- 6 condition kind, 7 condition version.
-- Returns 1 when the key was live and is removed, 0 when it was not live, -1 on conflict.
local key = ARGV[4]
local ctx = open(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), {key})
reconcile(ctx)
local cur = live(ctx, key)
local status = 0
if not cond_ok(cur, ARGV[6], ARGV[7]) then
  status = -1
elseif cur then
  redis.call('HDEL', K_STATE, 'k' .. key)
  redis.call('ZREM', K_EXP, key)
  emit(ctx, 'd', key, 'r', ARGV[5])
  status = 1
end
finish(ctx, 0, false)
return status
