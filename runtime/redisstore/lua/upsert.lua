-- upsert.lua: ARGV 1 epoch candidate, 2 retention ms, 3 max events, 4 max entries, then five
-- arguments per upsert: key, value, ttl ms, condition kind, condition version.
-- Applies the upserts in order and returns five integers for each: 1, version, createdAt,
-- updatedAt, expiresAt; or -1 (conflict) or -2 (at capacity) and four zeros.
local n = (#ARGV - 4) / 5
local keys = {}
for i = 1, n do
  keys[i] = ARGV[5 * i]
end
local ctx = open(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), keys)
reconcile(ctx)
local max_entries = tonumber(ARGV[4])
local live_count = nil -- counted when a new key needs it
local fresh = false
local until_ms = 0
local out = {}
for i = 1, n do
  local a = 5 * i
  local key, value = ARGV[a], ARGV[a + 1]
  local cur = live(ctx, key)
  local status = 1
  if not cond_ok(cur, ARGV[a + 3], ARGV[a + 4]) then
    status = -1
  elseif cur == nil then
    if live_count == nil then
      live_count = redis.call('ZCOUNT', K_EXP, '(' .. ctx.now_s, '+inf')
      fresh = live_count == 0
    end
    if live_count >= max_entries then
      status = -2
    else
      live_count = live_count + 1
    end
  end
  if status < 0 then
    local o = #out
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = status, 0, 0, 0, 0
  else
    local created, created_s = ctx.now, ctx.now_s
    if cur then
      created, created_s = tonumber(cur.c_s), cur.c_s
    end
    local expires = ctx.now + tonumber(ARGV[a + 2])
    local expires_s = num(expires)
    local v_s = emit(ctx, 'u', key, 'c', created_s, 'e', expires_s, 'v', value)
    write(ctx, key, encode(v_s, created_s, ctx.now_s, expires_s, value), expires)
    until_ms = math.max(until_ms, expires)
    local o = #out
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = 1, ctx.seq, created, ctx.now, expires
  end
end
finish(ctx, until_ms, fresh)
return out
