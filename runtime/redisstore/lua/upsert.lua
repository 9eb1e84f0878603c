-- upsert.lua: ARGV 1 epoch candidate, 2 retention ms, 3 max events, 4 key, 5 value,
-- 6 ttl ms, 7 condition kind, 8 condition version, 9 max entries.
-- Returns {1, version, createdAt, updatedAt, expiresAt}, {-1} on conflict, {-2} at capacity.
local key, value = ARGV[4], ARGV[5]
local ctx = open(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), key)
reconcile(ctx)
local cur = live(ctx, key)
local fresh = false
local status = 1
if not cond_ok(cur, tonumber(ARGV[7]), tonumber(ARGV[8])) then
  status = -1
elseif cur == nil then
  local n = redis.call('ZCOUNT', K_EXP, '(' .. num(ctx.now), '+inf')
  if n >= tonumber(ARGV[9]) then
    status = -2
  end
  fresh = n == 0
end
if status < 0 then
  finish(ctx, 0, false)
  return {status}
end
local created = ctx.now
if cur then
  created = cur.c
end
local expires = ctx.now + tonumber(ARGV[6])
local version = ctx.seq + 1
put(ctx, 'k' .. key, encode(version, created, ctx.now, expires, value))
set_expiry(ctx, key, expires)
emit(ctx, 'u', key, 'c', num(created), 'e', num(expires), 'v', value)
finish(ctx, expires, fresh)
return {1, version, created, ctx.now, expires}
