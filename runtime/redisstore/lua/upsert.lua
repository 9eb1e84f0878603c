-- upsert.lua: ARGV ARG_EPOCH, ARG_RETENTION, ARG_MAX_EVENTS, UPSERT_MAX_ENTRIES, then after the
-- UPSERT_HEAD_ARGS first ones UPSERT_ARGS_PER_CALL per upsert, at these offsets: UPSERT_KEY,
-- UPSERT_VALUE, UPSERT_TTL (ms), UPSERT_COND, UPSERT_COND_VERSION.
-- Applies the upserts in order and returns five integers for each: STATUS_OK, version,
-- createdAt, updatedAt, expiresAt; STATUS_CONFLICT, the key's version (0 when not live) and
-- three zeros; or STATUS_CAPACITY and four zeros.
local n = (#ARGV - UPSERT_HEAD_ARGS) / UPSERT_ARGS_PER_CALL
-- base returns the position before the arguments of upsert i.
local function base(i)
  return UPSERT_HEAD_ARGS + (i - 1) * UPSERT_ARGS_PER_CALL
end
local keys = {}
for i = 1, n do
  keys[i] = ARGV[base(i) + UPSERT_KEY]
end
local ctx = open(ARGV[ARG_EPOCH], tonumber(ARGV[ARG_RETENTION]), tonumber(ARGV[ARG_MAX_EVENTS]), keys)
reconcile(ctx)
local max_entries = tonumber(ARGV[UPSERT_MAX_ENTRIES])
local live_count = nil -- counted when a new key needs it
local fresh = false
local until_ms = 0
local out = {}
for i = 1, n do
  local a = base(i)
  local key, value = ARGV[a + UPSERT_KEY], ARGV[a + UPSERT_VALUE]
  local cur = live(ctx, key)
  local status = STATUS_OK
  if not cond_ok(cur, ARGV[a + UPSERT_COND], ARGV[a + UPSERT_COND_VERSION]) then
    status = STATUS_CONFLICT
  elseif cur == nil then
    if live_count == nil then
      live_count = redis.call('ZCOUNT', K_EXP, '(' .. ctx.now_s, '+inf')
      fresh = live_count == 0
    end
    if live_count >= max_entries then
      status = STATUS_CAPACITY
    else
      live_count = live_count + 1
    end
  end
  if status ~= STATUS_OK then
    local version = 0
    if status == STATUS_CONFLICT then
      version = version_of(cur)
    end
    local o = #out
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = status, version, 0, 0, 0
  else
    local created, created_s = ctx.now, ctx.now_s
    if cur then
      created, created_s = tonumber(cur.c_s), cur.c_s
    end
    local expires = ctx.now + tonumber(ARGV[a + UPSERT_TTL])
    local expires_s = num(expires)
    local v_s = emit(ctx, KIND_UPSERT, key, FIELD_CREATED_AT, created_s, FIELD_EXPIRES_AT, expires_s, FIELD_VALUE, value)
    write(ctx, key, encode(v_s, created_s, ctx.now_s, expires_s, value), expires)
    until_ms = math.max(until_ms, expires)
    local o = #out
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = STATUS_OK, ctx.seq, created, ctx.now, expires
  end
end
finish(ctx, until_ms, fresh)
return out
