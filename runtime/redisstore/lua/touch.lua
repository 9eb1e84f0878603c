-- touch.lua: ARGV ARG_EPOCH, ARG_RETENTION, ARG_MAX_EVENTS, TOUCH_KEY, TOUCH_TTL (ms),
-- TOUCH_QUIET (1 for a quiet touch, else 0), TOUCH_COND, TOUCH_COND_VERSION.
-- Returns {STATUS_OK, version, expiresAt}, {STATUS_NOT_LIVE} when the key is not live,
-- {STATUS_CONFLICT, the key's version (0 when not live)} when the condition failed.
local key = ARGV[TOUCH_KEY]
local ctx = open(ARGV[ARG_EPOCH], tonumber(ARGV[ARG_RETENTION]), tonumber(ARGV[ARG_MAX_EVENTS]), {key})
reconcile(ctx)
local cur = live(ctx, key)
if not cond_ok(cur, ARGV[TOUCH_COND], ARGV[TOUCH_COND_VERSION]) then
  finish(ctx, 0, false)
  return {STATUS_CONFLICT, version_of(cur)}
end
if cur == nil then
  finish(ctx, 0, false)
  return {STATUS_NOT_LIVE}
end
local expires = ctx.now + tonumber(ARGV[TOUCH_TTL])
local expires_s = num(expires)
local version, v_s = tonumber(cur.v_s), cur.v_s
local updated_s, vpos = string.match(cur.stored, '^%d+|%d+|(%d+)|%d+|()')
if tonumber(ARGV[TOUCH_QUIET]) ~= 1 then
  v_s = emit(ctx, KIND_TOUCH, key, FIELD_EXPIRES_AT, expires_s)
  version, updated_s = ctx.seq, ctx.now_s
end
write(ctx, key, encode(v_s, cur.c_s, updated_s, expires_s, string.sub(cur.stored, vpos)), expires)
finish(ctx, expires, false)
return {STATUS_OK, version, expires}
