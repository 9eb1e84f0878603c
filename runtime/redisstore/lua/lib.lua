-- lib.lua: shared by every script; the operation's own file is appended to it.
--
-- KEYS: 1 state (hash key -> stored entry), 2 exp (zset key -> expiry ms),
--       3 events (stream, IDs "<version>-0"), 4 meta (hash: epoch, seq, trim, kexp).
-- A stored entry is "<version>|<createdAt>|<updatedAt>|<expiresAt>|<value bytes>", times in
-- Unix milliseconds of the server's clock.
local K_STATE, K_EXP, K_EVENTS, K_META = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- Most due entries one call expires before it does its own work.
local RECONCILE_BATCH = 100
-- Most old events one call inspects when it trims the stream by retention.
local TRIM_SCAN = 100

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function num(n)
  return string.format('%d', n)
end

local function parse(stored)
  local v, c, u, e, p = string.match(stored, '^(%d+)|(%d+)|(%d+)|(%d+)|()')
  return tonumber(v), tonumber(c), tonumber(u), tonumber(e), p
end

local function encode(v, c, u, e, value)
  return num(v) .. '|' .. num(c) .. '|' .. num(u) .. '|' .. num(e) .. '|' .. value
end

-- open reads the tenant's meta, creating it with the candidate epoch when absent. ret and
-- maxev are the event retention (ms) and the most events kept; 0 for read-only callers.
local function open(cand, ret, maxev)
  local now = now_ms()
  local m = redis.call('HMGET', K_META, 'epoch', 'seq', 'trim', 'kexp')
  local ctx = {now = now, ret = ret, maxev = maxev}
  if m[1] then
    ctx.epoch, ctx.seq = m[1], tonumber(m[2])
    ctx.trim, ctx.kexp = tonumber(m[3] or '0'), tonumber(m[4] or '0')
  else
    ctx.epoch, ctx.seq, ctx.trim, ctx.kexp = cand, 0, 0, 0
    redis.call('HSET', K_META, 'epoch', cand, 'seq', 0)
    -- A tenant that is only read still disappears by itself.
    redis.call('PEXPIRE', K_META, ret)
  end
  ctx.seq0 = ctx.seq
  return ctx
end

-- emit appends the event of the next version: kind u(psert), t(ouch), d(elete) or (e)x(pire).
local function emit(ctx, kind, key, ...)
  ctx.seq = ctx.seq + 1
  redis.call('XADD', K_EVENTS, 'MAXLEN', ctx.maxev, num(ctx.seq) .. '-0',
    'p', ctx.epoch, 't', kind, 'k', key, 'a', num(ctx.now), ...)
end

local function expire_one(ctx, key, e)
  redis.call('HDEL', K_STATE, key)
  redis.call('ZREM', K_EXP, key)
  emit(ctx, 'x', key, 'e', num(e))
end

-- reconcile expires a bounded batch of due entries, each with an expire event.
local function reconcile(ctx)
  local due = redis.call('ZRANGEBYSCORE', K_EXP, '-inf', ctx.now, 'WITHSCORES', 'LIMIT', 0, RECONCILE_BATCH)
  for i = 1, #due, 2 do
    expire_one(ctx, due[i], tonumber(due[i + 1]))
  end
end

-- live returns the stored entry of key if it is live. A stored entry past its expiry is
-- expired here, with its event, so that the caller's event comes after it.
local function live(ctx, key)
  local s = redis.call('HGET', K_STATE, key)
  if not s then
    return nil
  end
  local v, c, u, e, p = parse(s)
  if e <= ctx.now then
    expire_one(ctx, key, e)
    return nil
  end
  return {v = v, c = c, u = u, e = e, value = string.sub(s, p)}
end

-- cond_ok checks a write condition: kind 0 none, 1 if new, 2 if exists, 3 if version.
local function cond_ok(cur, kind, version)
  if kind == 1 then
    return cur == nil
  elseif kind == 2 then
    return cur ~= nil
  elseif kind == 3 then
    return cur ~= nil and cur.v == version
  end
  return true
end

-- trim drops the events older than the retention, a bounded number per call. meta.trim is
-- the earliest time the oldest retained event can become droppable.
local function trim(ctx)
  if ctx.trim > ctx.now then
    return
  end
  local cutoff = ctx.now - ctx.ret
  local next_trim = ctx.now + ctx.ret
  local newest = redis.call('XREVRANGE', K_EVENTS, '+', '-', 'COUNT', 1)
  if #newest > 0 and tonumber(newest[1][2][8]) <= cutoff then
    redis.call('XTRIM', K_EVENTS, 'MAXLEN', 0)
  elseif #newest > 0 then
    local old = redis.call('XRANGE', K_EVENTS, '-', '+', 'COUNT', TRIM_SCAN)
    local keep = nil
    for i = 1, #old do
      local at = tonumber(old[i][2][8])
      if at > cutoff then
        keep = old[i][1]
        next_trim = at + ctx.ret
        break
      end
    end
    if keep == nil then
      -- TRIM_SCAN droppable events and more to inspect: continue on the next call.
      local last = old[#old][1]
      keep = num(tonumber(string.match(last, '^(%d+)')) + 1) .. '-0'
      next_trim = ctx.now
    end
    redis.call('XTRIM', K_EVENTS, 'MINID', keep)
  end
  ctx.trim = next_trim
  redis.call('HSET', K_META, 'trim', num(next_trim))
end

-- finish saves the version counter, trims the stream and keeps every key of the tenant alive
-- until the longest live TTL plus the event retention (and a slack, to refresh rarely).
-- until is the latest expiry the caller wrote; fresh means the state keys may be new.
local function finish(ctx, until_ms, fresh)
  if ctx.seq ~= ctx.seq0 then
    redis.call('HSET', K_META, 'seq', num(ctx.seq))
  end
  trim(ctx)
  local need = math.max(ctx.now, until_ms) + ctx.ret
  if need > ctx.kexp or fresh then
    local at = need + math.floor(ctx.ret / 4)
    if need <= ctx.kexp then
      at = ctx.kexp
    end
    for i = 1, 4 do
      redis.call('PEXPIREAT', KEYS[i], at)
    end
    if at ~= ctx.kexp then
      redis.call('HSET', K_META, 'kexp', num(at))
    end
  end
end

