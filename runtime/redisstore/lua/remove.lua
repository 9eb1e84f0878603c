-- remove.lua: ARGV ARG_EPOCH, ARG_RETENTION, ARG_MAX_EVENTS, REMOVE_KEY, REMOVE_REASON,
-- REMOVE_COND, REMOVE_COND_VERSION.
-- Returns {STATUS_OK} when the key was live and is removed, {STATUS_NOT_LIVE} when it was not
-- live, {STATUS_CONFLICT, the key's version (0 when not live)} when the condition failed.
local key = ARGV[REMOVE_KEY]
local ctx = open(ARGV[ARG_EPOCH], tonumber(ARGV[ARG_RETENTION]), tonumber(ARGV[ARG_MAX_EVENTS]), {key})
reconcile(ctx)
local cur = live(ctx, key)
local out = {STATUS_NOT_LIVE}
if not cond_ok(cur, ARGV[REMOVE_COND], ARGV[REMOVE_COND_VERSION]) then
  out = {STATUS_CONFLICT, version_of(cur)}
elseif cur then
  redis.call('HDEL', K_STATE, ENTRY_PREFIX .. key)
  redis.call('ZREM', K_EXP, key)
  emit(ctx, KIND_DELETE, key, FIELD_REASON, ARGV[REMOVE_REASON])
  out = {STATUS_OK}
end
finish(ctx, 0, false)
return out
