-- lib.lua: shared by read.lua and tick.lua. A prelude generated from protocol.go comes before
-- it, then check.lua: the names in capitals (codes, field names, argument positions) are Go's.
-- The operation's own file is appended to it.
--
-- KEYS: KEY_STATE, a hash: ENTRY_PREFIX..key -> stored entry, and the tenant's meta fields
--         META_EPOCH, META_SEQ (last version), META_DUE (no expiry is earlier), META_TRIM (no
--         event is droppable before), META_KEXP (the Redis expiry of the hash and the set),
--         META_SEXP (the stream's Redis expiry), META_AT (the time of
--         the call that made the last version: with it, the version names one point of the
--         tenant's history even after a failover issued lost versions again), and the readers'
--         registrations (see open.lua);
--       KEY_EXP, a sorted set: key -> expiry;
--       KEY_EVENTS, a stream: the events of a call are one entry, whose ID is
--         '<last version>-<n-1>' for the n events of versions last-n+1 to last, and whose
--         fields are FIELD_EPOCH, FIELD_AT (the time of the events) and FIELD_EVENTS: the
--         events, one after the other, each encoded as event below makes it.
-- A stored entry is '<version>|<createdAt>|<updatedAt>|<expiresAt>|<value bytes>'. Times are
-- Unix milliseconds of the server's clock.
local K_STATE, K_EXP, K_EVENTS = KEYS[KEY_STATE], KEYS[KEY_EXP], KEYS[KEY_EVENTS]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function num(n)
  return string.format('%d', n)
end

-- open reads the tenant's meta in one HMGET; a missing meta gets the candidate epoch. ret and
-- maxev are the event retention (ms) and the most events kept. Writes to the state hash
-- collect in ctx until finish. A malformed meta returns nil and its error reply, before any
-- write.
local function open(cand, ret, maxev)
  local m = redis.call('HMGET', K_STATE, META_EPOCH, META_SEQ, META_DUE, META_TRIM, META_KEXP, META_SEXP)
  local bad = check_meta(m)
  if bad then
    return nil, bad
  end
  local ctx = {now = now_ms(), ret = ret, maxev = maxev, put = {}}
  ctx.now_s = num(ctx.now)
  ctx.epoch, ctx.seq = m[1], tonumber(m[2] or '0')
  ctx.due, ctx.trim, ctx.kexp = tonumber(m[3] or '0'), tonumber(m[4] or '0'), tonumber(m[5] or '0')
  ctx.sexp = m[6] -- as read: see stream_expiry
  if not ctx.epoch then
    -- A new epoch, of the server's time and the candidate's random digits (as in write.lua).
    -- Whatever is left of an older one (say, after an eviction) is dropped, or its stream IDs
    -- would block the new versions and its expiries would expire phantoms.
    ctx.epoch = string.format('%012x', ctx.now) .. string.sub(cand, EPOCH_TIME_DIGITS + 1)
    ctx.put[1], ctx.put[2] = META_EPOCH, ctx.epoch
    redis.call('DEL', K_EXP, K_EVENTS)
  end
  ctx.seq0 = ctx.seq
  return ctx
end

local function put(ctx, field, value)
  ctx.put[#ctx.put + 1] = field
  ctx.put[#ctx.put + 1] = value
end

-- event returns an event in the encoding of a stream entry's FIELD_EVENTS (and of the notice):
-- ' <kind> <key length>:<key> <createdAt> <expiresAt> <value or reason length>:<value or
-- reason>', with the times that the kind lacks '0'. kind is KIND_UPSERT, KIND_TOUCH,
-- KIND_DELETE or KIND_EXPIRE.
local function event(kind, key, c, e, body)
  return ' ' .. kind .. ' ' .. #key .. ':' .. key .. ' ' .. c .. ' ' .. e .. ' ' .. #body .. ':' .. body
end

-- reconcile expires a bounded batch of due entries, each with an expire event, counts them in
-- ctx.expired, and finds the next due time. It costs nothing before META_DUE. It reads the due
-- entries and the next one, and returns the error reply of a malformed expiry, before its
-- first write: the stream entry of the events, so that a refused XADD (a stream whose last ID
-- is ahead of the version, see corrupt) changes nothing.
local function reconcile(ctx)
  if ctx.due > ctx.now then
    return nil
  end
  local due, nxt, restored = read_due(K_STATE, K_EXP, ctx.now, ctx.seq0)
  if not due then
    return nxt
  end
  if restored then
    ctx.fresh = true
  end
  if #due > 0 then
    local evs, members, names = {}, {}, {}
    for i = 1, #due, 2 do
      local key = due[i]
      evs[#evs + 1] = event(KIND_EXPIRE, key, '0', num(tonumber(due[i + 1])), '')
      members[#members + 1], names[#names + 1] = key, ENTRY_PREFIX .. key
    end
    ctx.seq = ctx.seq + #evs
    ctx.events = table.concat(evs)
    local id = num(ctx.seq) .. '-' .. (#evs - 1)
    -- A stream that should be there and is not expired a retention after its last event, or
    -- was lost alone (evicted): made again, it needs its own expiry (see finish).
    if ctx.seq0 == 0 or not redis.call('XADD', K_EVENTS, 'NOMKSTREAM', id,
          FIELD_EPOCH, ctx.epoch, FIELD_AT, ctx.now_s, FIELD_EVENTS, ctx.events) then
      redis.call('XADD', K_EVENTS, id, FIELD_EPOCH, ctx.epoch, FIELD_AT, ctx.now_s, FIELD_EVENTS, ctx.events)
      ctx.made_stream = true
    end
    redis.call('HDEL', K_STATE, unpack(names))
    redis.call('ZREM', K_EXP, unpack(members))
  end
  ctx.expired = #due / 2
  ctx.due = NEVER
  if #nxt > 0 then
    ctx.due = tonumber(nxt[2])
  end
  put(ctx, META_DUE, num(ctx.due))
  return nil
end

-- trim drops the events older than the retention, a bounded number per call, from META_TRIM on.
-- Entries the scripts did not write (junk) are dropped as old ones.
local function trim(ctx)
  if ctx.trim > ctx.now then
    return
  end
  local cutoff = ctx.now - ctx.ret
  local next_trim = ctx.now + ctx.ret
  local newest = redis.call('XREVRANGE', K_EVENTS, '+', '-', 'COUNT', 1)
  if #newest > 0 and (event_at(newest[1]) or ctx.now) <= cutoff then
    redis.call('XTRIM', K_EVENTS, 'MAXLEN', 0)
  elseif #newest > 0 then
    local old = redis.call('XRANGE', K_EVENTS, '-', '+', 'COUNT', TRIM_SCAN)
    local keep = nil
    for i = 1, #old do
      local at = event_at(old[i]) or cutoff
      if at > cutoff then
        keep = old[i][1]
        next_trim = math.min(at, ctx.now) + ctx.ret
        break
      end
    end
    if keep == nil then
      -- TRIM_SCAN droppable events and maybe more: go on with the next call.
      keep = num(tonumber(string.match(old[#old][1], '^(%d+)')) + 1) .. '-0'
      next_trim = ctx.now
    end
    redis.call('XTRIM', K_EVENTS, 'MINID', keep)
  end
  ctx.trim = next_trim
  put(ctx, META_TRIM, num(next_trim))
end

-- finish writes the collected state changes (with the version counter) in one HSET, trims
-- the stream to the last maxev versions and by retention, and keeps the tenant's state hash
-- and expiry set alive until the latest expiry written (until_ms) plus the event retention,
-- with a quarter of the retention as slack so that this is rare, and at once when reconcile
-- made the expiry set again (ctx.fresh); and the stream, when reconcile added events, until a
-- retention after them (stream_expiry).
local function finish(ctx, until_ms)
  trim(ctx)
  if ctx.seq ~= ctx.seq0 then
    put(ctx, META_SEQ, num(ctx.seq))
    put(ctx, META_AT, ctx.now_s)
    if ctx.seq > ctx.maxev then
      -- An entry's ID is its last version: keep the entries of the last maxev versions, whole
      -- stream nodes only (as write.lua does).
      redis.call('XTRIM', K_EVENTS, 'MINID', '~', num(ctx.seq - ctx.maxev + 1) .. '-0')
    end
  end
  local need = math.max(ctx.now, until_ms) + ctx.ret
  local at = nil
  if need > ctx.kexp or ctx.fresh then
    at = math.max(need + math.floor(ctx.ret / 4), ctx.kexp)
    if at ~= ctx.kexp then
      put(ctx, META_KEXP, num(at))
    end
  end
  local sat = ctx.events and stream_expiry(ctx.sexp, ctx.made_stream, ctx.now, ctx.ret)
  if sat then
    put(ctx, META_SEXP, num(sat))
  end
  if #ctx.put > 0 then
    redis.call('HSET', K_STATE, unpack(ctx.put))
  end
  expire_keys(KEYS, at, sat)
end

-- notify publishes the tenant's notice (PUBLISH; see hub in notify.go for why not SPUBLISH) on
-- the channel named as the events stream: '<epoch> <last version> <ms until the next expiry, or
-- -1 when none>', then, if the call added events, ' <time of the events>' and, if they fit in
-- NOTICE_MAX bytes, the events as their stream entry holds them, the last version's last
-- (protocol.go's parseNotice). The readers of every process wake on it (see pump.go).
local function notify(ctx)
  local due_in = -1
  if ctx.due < NEVER then
    due_in = math.max(ctx.due - ctx.now, 0)
  end
  local head = ctx.epoch .. ' ' .. num(ctx.seq) .. ' ' .. num(due_in)
  if ctx.events then
    head = head .. ' ' .. ctx.now_s -- without the events too: see write.lua
    if #ctx.events <= NOTICE_MAX then
      head = head .. ctx.events
    end
  end
  redis.pcall('PUBLISH', K_EVENTS, head) -- refused (ACL): the writes stand, the readers poll
end
