-- write.lua: applies a batch of writes (upserts, touches and removes), in order, each with its
-- own result, in one call. It stands alone, without lib.lua (check.lua comes before it), and
-- defines few functions: every call runs the whole script, and every function it defines is
-- a closure made anew.
--
-- KEYS: KEY_STATE, KEY_EXP and KEY_EVENTS, as lib.lua describes them.
-- ARGV: ARG_EPOCH, ARG_RETENTION, ARG_MAX_EVENTS, WRITE_MAX_ENTRIES, WRITE_KNOWN_EPOCH,
-- WRITE_WATCHER (the writing backend's watcher, or ''), then
-- after the WRITE_HEAD_ARGS first ones WRITE_ARGS_PER_OP per operation, at these offsets: OP_CODE
-- (OP_UPSERT, OP_TOUCH, OP_TOUCH_QUIET or OP_REMOVE), OP_KEY, OP_VALUE (the upsert's value, the
-- remove's reason), OP_TTL (ms), OP_COND (a condition code), OP_COND_VERSION, OP_COND_EPOCH
-- (for COND_IF_VERSION: the epoch the tenant must be in, or '' for any).
-- Returns WRITE_REPLY_PER_OP integers per operation (some as decimal text, which is cheaper
-- here than a number): STATUS_OK, version, createdAt, updatedAt, expiresAt (remove: STATUS_OK,
-- the delete's version, 0, its time, 0; a quiet touch: the version it kept); STATUS_NOT_LIVE
-- (touch, remove) or STATUS_CAPACITY (upsert) and zeros; STATUS_CONFLICT, the key's version
-- (0 when not live) and zeros. Then the first version the batch made (one more than the last
-- when none), the tenant's last version and the ms until its next expiry (-1 when none), as its
-- notice tells them. Then the tenant's epoch, its
-- bytes EPOCH_CHUNK to an integer, big-endian, unless it is WRITE_KNOWN_EPOCH, the epoch the
-- client says it knows the tenant by (or '').
-- A malformed batch, or junk in the tenant's keys, is an error, raised before the first write.
-- The batch's events are one stream entry (see lib.lua), added before any other write, so that
-- a refused XADD (a stream whose last ID is ahead of the version) fails the call before it
-- changes anything. A batch that emits events or brings the next expiry forward publishes the
-- tenant's notice (see lib.lua) last, with the time of its events and the events when they
-- fit, if a backend other than the writer's watches the tenant (open.lua registers them) or
-- the batch made the epoch: the writer's own readers learn it from the reply.
local K_STATE, K_EXP, K_EVENTS = KEYS[KEY_STATE], KEYS[KEY_EXP], KEYS[KEY_EVENTS]
local n = (#ARGV - WRITE_HEAD_ARGS) / WRITE_ARGS_PER_OP
if n ~= math.floor(n) then
  return redis.error_reply('ephemeral: write: malformed arguments')
end

-- Check every operation, and read the meta and the entries of the batch in one HMGET.
-- (tonumber parses a TTL only when it differs from the one before: a batch's are alike.)
local fields = {META_EPOCH, META_SEQ, META_DUE, META_TRIM, META_KEXP}
local ttl_ok = nil
for i = 1, n do
  local a = WRITE_HEAD_ARGS + (i - 1) * WRITE_ARGS_PER_OP
  local op, code, ttl = ARGV[a + OP_CODE], ARGV[a + OP_COND], ARGV[a + OP_TTL]
  if ttl ~= ttl_ok and tonumber(ttl) then
    ttl_ok = ttl
  end
  if not (op == OP_UPSERT or op == OP_TOUCH or op == OP_TOUCH_QUIET or op == OP_REMOVE) or
      not (code == COND_NONE or code == COND_IF_NEW or code == COND_IF_EXISTS or code == COND_IF_VERSION) or
      ttl ~= ttl_ok then
    return redis.error_reply('ephemeral: write: malformed operation ' .. i)
  end
  fields[5 + i] = ENTRY_PREFIX .. ARGV[a + OP_KEY]
end
fields[6 + n], fields[7 + n], fields[8 + n], fields[9 + n] = META_WATCHER, META_WATCHED, META_SHARED, META_SEXP
local m = redis.call('HMGET', K_STATE, unpack(fields))
-- The expiry set is written after the first event: it must be one.
local bad = check_meta(m) or check_type(K_EXP, KEY_EXP, 'zset')
if bad then
  return bad
end
-- parsed holds what parse_entry returned for each stored entry read, 4 positions per
-- operation (nil when the key had none), for the operations to use rather than parse it again.
local parsed = {}
for i = 1, n do
  local s = m[5 + i]
  if s then
    local a, j = WRITE_HEAD_ARGS + (i - 1) * WRITE_ARGS_PER_OP, 4 * i
    parsed[j - 3], parsed[j - 2], parsed[j - 1], parsed[j] = parse_entry(ARGV[a + OP_KEY], s)
    if not parsed[j - 3] then
      return parsed[j - 2]
    end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = string.format('%d', now)
local ret, maxev = tonumber(ARGV[ARG_RETENTION]), tonumber(ARGV[ARG_MAX_EVENTS])
local epoch, seq = m[1], tonumber(m[2] or '0')
local due, trim, kexp = tonumber(m[3] or '0'), tonumber(m[4] or '0'), tonumber(m[5] or '0')
local seq0, due0, trim0 = seq, due, trim
local put = {} -- HSET arguments
local made = not epoch
if made then
  -- A new epoch, of the server's time and the candidate's random digits, so that a later
  -- epoch sorts after an earlier one. Whatever is left of an older one (say, after an
  -- eviction) is dropped, or its stream IDs would block the new versions and its expiries
  -- would expire phantoms.
  epoch = string.format('%012x', now) .. string.sub(ARGV[ARG_EPOCH], EPOCH_TIME_DIGITS + 1)
  put[1], put[2] = META_EPOCH, epoch
  redis.call('DEL', K_EXP, K_EVENTS)
end

-- last is, for each key the batch changed, the operation that changed it last (0: the
-- expiry of due entries, before the operations); ent[i] is what operation i left of its key:
-- the stored entry, or false when it is gone (nil: it left it as it was), e_of[i] and
-- e_s_of[i] the entry's expiry as a number and as text (a number argument of redis.call costs
-- a float formatting). A batch's keys are seldom repeated: an operation reads what the
-- batch found (parsed) unless one before it changed its key.
local last, ent, e_of, e_s_of = {}, {}, {}, {}
ent[0] = false

-- emit adds the event of the next version to evs, in the encoding of lib.lua's stream entries,
-- and returns the version's text, seq_s: c, e and body are the event's createdAt, expiresAt
-- (as text, '0' when it has none) and value or reason ('' when none). The text of a length is
-- made again only when it differs from the one before (kn, kl for the keys; bn, bl for the
-- bodies): a batch's keys are often of one length and its touches' bodies empty, and a number
-- in a concatenation takes a float formatting.
local seq_s = nil
local evs, nevs = {}, 0
local kn, kl, bn, bl = -1, nil, -1, nil
local function emit(kind, key, c, e, body)
  seq = seq + 1
  seq_s = string.format('%d', seq)
  if #key ~= kn then
    kn, kl = #key, string.format('%d', #key)
  end
  if #body ~= bn then
    bn, bl = #body, string.format('%d', #body)
  end
  nevs = nevs + 1
  evs[nevs] = ' ' .. kind .. ' ' .. kl .. ':' .. key .. ' ' .. c .. ' ' .. e .. ' ' .. bl .. ':' .. body
  return seq_s
end

-- Expire a bounded batch of due entries, each with an expire event, so that they never count
-- against the capacity; this costs nothing before META_DUE. The due entries and the next one
-- are read, and their expiries checked, before the first write (but the DEL of a new epoch,
-- after which there is nothing to check).
local d, nxt = nil, nil
local fresh = false -- a key of the tenant may have been created
local made_stream = false -- the stream was made by this call
if due <= now then
  d, nxt, fresh = read_due(K_STATE, K_EXP, now, seq0)
  if not d then
    return nxt
  end
end
if d then
  for j = 1, #d, 2 do
    local key = d[j]
    emit(KIND_EXPIRE, key, '0', string.format('%d', tonumber(d[j + 1])), '')
    last[key] = 0
  end
  due = NEVER
  if #nxt > 0 then
    due = tonumber(nxt[2])
  end
end

local out = {}
local live_count = nil -- the live entries when the script started, counted when needed
local added = 0        -- live entries the batch added, less those it removed
local until_ms = 0     -- the latest expiry written
local ttl_last, e_last, e_s_last = nil, nil, nil -- the last TTL's expiry, as a number and as text
for i = 1, n do
  local a = WRITE_HEAD_ARGS + (i - 1) * WRITE_ARGS_PER_OP
  local op, key = ARGV[a + OP_CODE], ARGV[a + OP_KEY]
  local p = last[key]
  -- stored is the key's entry before the operation and p1 to p4 the positions of its '|'; e_s
  -- is its expiresAt as text, and v_s and c_s its version and createdAt, taken out of it only
  -- where an operation needs them.
  local stored, p1, p2, p3, p4, v_s, c_s, e_s
  if p == nil then -- as read: parsed above
    stored = m[5 + i]
    if stored then
      local j = 4 * i
      p1, p2, p3, p4 = parsed[j - 3], parsed[j - 2], parsed[j - 1], parsed[j]
    end
  else -- changed by an earlier operation of the batch
    stored = ent[p]
    if stored then
      p1, p2, p3, p4 = parse_entry(key, stored)
    end
  end
  if stored then
    e_s = string.sub(stored, p3 + 1, p4 - 1)
    if tonumber(e_s) <= now then
      -- Past its expiry but not reconciled yet: expired here, before this operation's event.
      emit(KIND_EXPIRE, key, '0', e_s, '')
      stored, ent[i], last[key] = false, false, i
    end
  end
  local code = ARGV[a + OP_COND]
  local status = STATUS_OK
  if stored and code == COND_IF_VERSION then
    v_s = string.sub(stored, 1, p1 - 1)
  end
  if not (code == COND_NONE or (code == COND_IF_NEW and not stored) or (code == COND_IF_EXISTS and stored) or
        (code == COND_IF_VERSION and stored and v_s == ARGV[a + OP_COND_VERSION] and
          (ARGV[a + OP_COND_EPOCH] == '' or ARGV[a + OP_COND_EPOCH] == epoch))) then
    status = STATUS_CONFLICT
  elseif op == OP_UPSERT and not stored then
    if live_count == nil then
      live_count = redis.call('ZCOUNT', K_EXP, '(' .. now_s, '+inf')
      fresh = fresh or live_count == 0
      if live_count == 0 and seq0 > 0 and redis.call('EXISTS', K_EXP) == 0 then
        -- No expiry set in a tenant with a version: empty, or lost alone (evicted) and its
        -- entries not counted. Made again from them (before the events: the first write).
        local earliest, err = restore_exp(K_STATE, K_EXP, nil, true)
        if not earliest then
          return err
        end
        if earliest < due then
          due = earliest
        end
        live_count = redis.call('ZCOUNT', K_EXP, '(' .. now_s, '+inf')
      end
    end
    if live_count + added >= tonumber(ARGV[WRITE_MAX_ENTRIES]) then
      status = STATUS_CAPACITY
    else
      added = added + 1
      c_s = now_s
    end
  elseif op ~= OP_UPSERT and not stored then
    status = STATUS_NOT_LIVE
  end
  local o = 5 * (i - 1) -- out's values so far, each set once
  if status == STATUS_CONFLICT and stored then
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = status, v_s or string.sub(stored, 1, p1 - 1), 0, 0, 0
  elseif status ~= STATUS_OK then
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = status, 0, 0, 0, 0
  elseif op == OP_REMOVE then
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] =
      status, emit(KIND_DELETE, key, '0', '0', ARGV[a + OP_VALUE]), 0, now_s, 0
    ent[i], last[key] = false, i
    added = added - 1
  else
    local ttl = ARGV[a + OP_TTL]
    if ttl ~= ttl_last then -- as in the checks: a batch's TTLs are alike
      ttl_last, e_last = ttl, now + tonumber(ttl)
      e_s_last = string.format('%d', e_last)
    end
    local e, u_s = e_last, now_s
    e_s = e_s_last
    if stored then
      c_s = string.sub(stored, p1 + 1, p2 - 1)
    end
    if op == OP_UPSERT then
      v_s = emit(KIND_UPSERT, key, c_s, e_s, ARGV[a + OP_VALUE])
      ent[i] = v_s .. '|' .. c_s .. '|' .. now_s .. '|' .. e_s .. '|' .. ARGV[a + OP_VALUE]
    elseif op == OP_TOUCH then
      v_s = emit(KIND_TOUCH, key, '0', e_s, '')
      ent[i] = v_s .. '|' .. c_s .. '|' .. now_s .. '|' .. e_s .. string.sub(stored, p4)
    else -- a quiet touch: its expiry alone
      v_s, u_s = string.sub(stored, 1, p1 - 1), string.sub(stored, p2 + 1, p3 - 1)
      ent[i] = string.sub(stored, 1, p3) .. e_s .. string.sub(stored, p4)
    end
    e_of[i], e_s_of[i], last[key] = e, e_s, i
    if e > until_ms then
      until_ms = e
    end
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = status, v_s, c_s, u_s, e
  end
end

-- The batch's events, one stream entry: the first write (the DEL of a new epoch aside). An
-- entry's ID is its last version: the same XADD drops the entries of versions before the last
-- maxev, whole stream nodes only ('~': an exact trim walks the first node's entries, those it
-- marked deleted before too, at every call), so the stream may keep up to a node of entries
-- more.
-- A stream that should be there and is not expired a retention after its last event, or was
-- lost alone (evicted): made again, it needs its own expiry (made_stream, stream_expiry), not the
-- other keys' (fresh, which would keep their expiry from being brought back by this write: a
-- tenant's first write after it was left alone is often the remove of its longest entry).
local function xadd(...)
  if seq0 == 0 or not redis.call('XADD', K_EVENTS, 'NOMKSTREAM', ...) then
    redis.call('XADD', K_EVENTS, ...)
    made_stream = true
  end
end
local events = nil
if nevs > 0 then
  events = nevs == 1 and evs[1] or table.concat(evs)
  local id = seq_s .. '-' .. string.format('%d', nevs - 1)
  if seq > maxev then
    xadd('MINID', '~', string.format('%d', seq - maxev + 1) .. '-0', id, FIELD_EPOCH, epoch, FIELD_AT, now_s,
      FIELD_EVENTS, events)
  else
    xadd(id, FIELD_EPOCH, epoch, FIELD_AT, now_s, FIELD_EVENTS, events)
  end
end

-- Drop the events older than the retention, a bounded number per call, from META_TRIM on.
-- Entries the scripts did not write (junk) are dropped as old ones.
if trim <= now then
  local cutoff = now - ret
  trim = now + ret
  local newest = redis.call('XREVRANGE', K_EVENTS, '+', '-', 'COUNT', 1)
  if #newest > 0 and (event_at(newest[1]) or now) <= cutoff then
    redis.call('XTRIM', K_EVENTS, 'MAXLEN', 0)
  elseif #newest > 0 then
    local old = redis.call('XRANGE', K_EVENTS, '-', '+', 'COUNT', TRIM_SCAN)
    local keep = nil
    for j = 1, #old do
      local at = event_at(old[j]) or cutoff
      if at > cutoff then
        keep = old[j][1]
        trim = math.min(at, now) + ret
        break
      end
    end
    if keep == nil then
      -- TRIM_SCAN droppable events and maybe more: go on with the next call.
      keep = string.format('%d', tonumber(string.match(old[#old][1], '^(%d+)')) + 1) .. '-0'
      trim = now
    end
    redis.call('XTRIM', K_EVENTS, 'MINID', keep)
  end
end

-- Write the entries, the expiries and the meta, and keep the state hash and the expiry set
-- alive until the latest expiry written plus the retention, with a quarter of the retention as
-- slack so that this is rare (or bring that back once the entry of the latest expiry is gone:
-- shrink_kexp); the stream, until a retention after its last event (stream_expiry).
-- The ZADD comes first: it tells whether the expiry set was lost alone (evicted), adding
-- members the batch did not add to the hash, and then the set, made again, needs the keys'
-- expiry (fresh).
local zadd, hdel, zrem = {}, {}, {}
local np, nz, nd, nnew = #put, 0, 0, 0
for i = 1, n do
  local a = WRITE_HEAD_ARGS + (i - 1) * WRITE_ARGS_PER_OP
  local e, key = ent[i], ARGV[a + OP_KEY]
  if e ~= nil and last[key] == i then
    if e then
      put[np + 1], put[np + 2] = fields[5 + i], e
      zadd[nz + 1], zadd[nz + 2] = e_s_of[i], key
      np, nz = np + 2, nz + 2
      if not m[5 + i] then
        nnew = nnew + 1
      end
      if e_of[i] < due then
        due = e_of[i]
      end
    else
      nd = nd + 1
      hdel[nd], zrem[nd] = fields[5 + i], key
    end
  end
end
if d then
  for j = 1, #d, 2 do
    if last[d[j]] == 0 then
      nd = nd + 1
      hdel[nd], zrem[nd] = ENTRY_PREFIX .. d[j], d[j]
    end
  end
end
if seq_s then
  put[#put + 1], put[#put + 2] = META_SEQ, seq_s
  put[#put + 1], put[#put + 2] = META_AT, now_s
end
if nz > 0 and redis.call('ZADD', K_EXP, unpack(zadd)) > nnew then
  -- Members the hash had and the set had not: the set was lost alone and made again by this
  -- ZADD. The other entries' expiries go back in it (malformed ones are left out: the events
  -- are written).
  fresh = true
  local earliest = restore_exp(K_STATE, K_EXP, last, false)
  if earliest < due then
    due = earliest
  end
end
if due ~= due0 then
  put[#put + 1], put[#put + 2] = META_DUE, string.format('%d', due)
end
if trim ~= trim0 then
  put[#put + 1], put[#put + 2] = META_TRIM, string.format('%d', trim)
end
if nd > 0 then
  redis.call('HDEL', K_STATE, unpack(hdel))
  redis.call('ZREM', K_EXP, unpack(zrem))
end
local sat = events and stream_expiry(m[9 + n], made_stream, now, ret)
if sat then
  put[#put + 1], put[#put + 2] = META_SEXP, string.format('%d', sat)
end
local need = math.max(now, until_ms) + ret
local at = nil
if need > kexp or fresh then
  at = math.max(need + math.floor(ret / 4), kexp)
elseif kexp > need + ret then
  at = shrink_kexp(K_EXP, need, kexp, ret)
end
if at and at ~= kexp then
  put[#put + 1], put[#put + 2] = META_KEXP, string.format('%d', at)
end
if #put > 0 then
  redis.call('HSET', K_STATE, unpack(put))
end
expire_keys(KEYS, at, sat)
-- The tail: the batch's first version, the tenant's last version and the ms until its next
-- expiry, as the notice tells them (the writer's readers may get no notice).
local due_in = -1
if due < NEVER then
  due_in = math.max(due - now, 0)
end
out[#out + 1], out[#out + 2], out[#out + 3] = seq0 + 1, seq, due_in
-- The epoch, unless the client knows it, EPOCH_CHUNK (6) bytes to an integer, with one
-- string.byte per integer: past the end, the missing bytes are zeros (which decodeEpoch skips).
if epoch ~= ARGV[WRITE_KNOWN_EPOCH] then
  for j = 1, #epoch, EPOCH_CHUNK do
    local b1, b2, b3, b4, b5, b6 = string.byte(epoch, j, j + 5)
    out[#out + 1] = ((((b1 * 256 + (b2 or 0)) * 256 + (b3 or 0)) * 256 + (b4 or 0)) * 256 + (b5 or 0)) * 256 + (b6 or 0)
  end
end
-- The notice, if another backend may need it: one registered until now or later other than
-- the writer's (a registration that is no number counts as one), or any, for the first
-- events of a new epoch (of a state lost, say, with the registrations in it).
if seq ~= seq0 or due < due0 then
  local watched, shared = tonumber(m[7 + n] or '0') or NEVER, tonumber(m[8 + n] or '0') or NEVER
  if made or shared >= now or watched >= now and m[6 + n] ~= ARGV[WRITE_WATCHER] then
    local head = epoch .. ' ' .. (seq_s or string.format('%d', seq)) .. ' ' .. string.format('%d', due_in)
    if events then
      -- The time of the call, which made the last version, even without the events: with
      -- it the pump tells a version it has from the same version issued again.
      head = head .. ' ' .. now_s
      if #events <= NOTICE_MAX then
        head = head .. events
      end
    end
    redis.pcall('PUBLISH', K_EVENTS, head) -- refused (ACL): the writes stand, the readers poll
  end
end
return out
