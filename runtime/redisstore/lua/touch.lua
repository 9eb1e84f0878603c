-- touch.lua: ARGV 1 epoch candidate, 2 retention ms, 3 max events, 4 key, 5 ttl ms,
-- 6 quiet (0 or 1), 7 condition kind, 8 condition version.
-- Returns {1, version, expiresAt}, {0} when the key is not live, {-1} on conflict.
local key = ARGV[4]
local ctx = open(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), {key})
reconcile(ctx)
local cur = live(ctx, key)
if not cond_ok(cur, ARGV[7], ARGV[8]) then
  finish(ctx, 0, false)
  return {-1}
end
if cur == nil then
  finish(ctx, 0, false)
  return {0}
end
local expires = ctx.now + tonumber(ARGV[5])
local expires_s = num(expires)
local version, v_s = tonumber(cur.v_s), cur.v_s
local updated_s, vpos = string.match(cur.stored, '^%d+|%d+|(%d+)|%d+|()')
if ARGV[6] ~= '1' then
  v_s = emit(ctx, 't', key, 'e', expires_s)
  version, updated_s = ctx.seq, ctx.now_s
end
write(ctx, key, encode(v_s, cur.c_s, updated_s, expires_s, string.sub(cur.stored, vpos)), expires)
finish(ctx, expires, false)
return {1, version, expires}
