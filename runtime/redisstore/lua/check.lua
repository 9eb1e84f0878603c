-- check.lua: the checks of what the scripts read from the tenant's keys, in front of every
-- script. A script runs them before its first write: Redis does not roll back a script that
-- fails, so junk in the keys (written by another program, a bad manual fix) must fail it before
-- it has written anything. corrupt makes the error reply, which Go turns into an error
-- wrapping backend.ErrCorrupt. Then what the writing scripts share beyond the checks: the
-- expiry set made again from the entries, the expiry of the keys.

-- is_num reports whether s is a number as the scripts write them: 1 to MAX_DIGITS decimal
-- digits, at most MAX_NUMBER, which a Lua number holds exactly.
local function is_num(s)
  return #s <= MAX_DIGITS and string.find(s, '^%d+$') ~= nil and (#s < MAX_DIGITS or tonumber(s) <= MAX_NUMBER)
end

-- corrupt returns the error reply of the bad value of field of the tenant's key KEYS[k]:
-- CORRUPT, k, the field's bytes in hex, the first QUOTE_MAX bytes of value in hex and its length.
local function corrupt(k, field, value)
  local function hex(s)
    return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
  end
  return redis.error_reply(CORRUPT .. ' ' .. k .. ' ' .. hex(field) .. ' ' .. hex(string.sub(value, 1, QUOTE_MAX)) .. ' ' .. #value)
end

-- check_type returns the error reply of a tenant's key, KEYS[k] named key, that exists with
-- another type than want, or nil. (A command on a key of the wrong type fails; the scripts
-- check the type of a key they write after their first write.)
local function check_type(key, k, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= want and t ~= 'none' then
    return corrupt(k, '', t)
  end
  return nil
end

-- check_meta returns the error reply of the first malformed field of the tenant's meta, read
-- with HMGET in the order META_EPOCH, META_SEQ, META_DUE, META_TRIM, META_KEXP into m, or nil.
local function check_meta(m)
  if m[1] and not (#m[1] <= MAX_EPOCH and string.find(m[1], '^%w+$')) then
    return corrupt(KEY_STATE, META_EPOCH, m[1])
  end
  for i = 2, 5 do
    if m[i] and not is_num(m[i]) then
      return corrupt(KEY_STATE, ({META_SEQ, META_DUE, META_TRIM, META_KEXP})[i - 1], m[i])
    end
  end
  return nil
end

-- parse_entry returns the positions of the four '|' of the stored entry s of key, after its
-- version, createdAt, updatedAt and expiresAt (its value bytes follow the last); or false and
-- the error reply of a malformed entry. An entry is '<version>|<createdAt>|<updatedAt>|
-- <expiresAt>|<value bytes>', each number as is_num says. Positions rather than the numbers'
-- text: a write needs one or two of them, and each string Lua makes costs a hash of its bytes.
local function parse_entry(key, s)
  local p1, p2, p3, p4 = string.match(s, '^%d+()|%d+()|%d+()|%d+()|')
  if not (p4 and p1 <= MAX_DIGITS + 1 and p2 - p1 <= MAX_DIGITS + 1 and p3 - p2 <= MAX_DIGITS + 1 and
        p4 - p3 <= MAX_DIGITS + 1) then
    return false, corrupt(KEY_STATE, ENTRY_PREFIX .. key, s)
  end
  return p1, p2, p3, p4
end

-- check_due returns the error reply of the first member of the expiry set with a malformed
-- score in d, a reply of ZRANGE or ZRANGEBYSCORE WITHSCORES, or nil. A score is an expiry: a
-- whole number of milliseconds, from 0 to NEVER.
local function check_due(d)
  for i = 2, #d, 2 do
    local x = tonumber(d[i])
    if not (x and x >= 0 and x <= NEVER and x == math.floor(x)) then
      return corrupt(KEY_EXP, d[i - 1], d[i])
    end
  end
  return nil
end

-- restore_exp puts the expiry of every entry of the state hash k_state but those of skip (a
-- table by key, or nil) back in the expiry set k_exp, which a server that evicts keys may lose while the hash
-- stays (see the package doc), and returns the earliest expiry put back (NEVER when none).
-- With strict it returns false and the error reply of a malformed entry before it adds any;
-- without, it leaves such an entry out (the operations that read it report it). The scripts
-- call it only where the set is missing in a tenant that has a version: rarely, and in a
-- tenant without entries it reads the meta fields alone.
local function restore_exp(k_state, k_exp, skip, strict)
  local cursor, zadd, earliest = '0', {}, NEVER
  repeat
    local r = redis.call('HSCAN', k_state, cursor, 'MATCH', ENTRY_PREFIX .. '*', 'COUNT', 1000)
    cursor = r[1]
    for i = 1, #r[2], 2 do
      local key = string.sub(r[2][i], #ENTRY_PREFIX + 1)
      if not (skip and skip[key] ~= nil) then
        local s = r[2][i + 1]
        local p1, err, p3, p4 = parse_entry(key, s)
        if p1 then
          local e = string.sub(s, p3 + 1, p4 - 1)
          zadd[#zadd + 1], zadd[#zadd + 2] = e, key
          earliest = math.min(earliest, tonumber(e))
        elseif strict then
          return false, err
        end
      end
    end
  until tonumber(cursor) == 0
  for i = 1, #zadd, 1000 do -- 500 members a ZADD: unpack's arguments are bounded
    redis.call('ZADD', k_exp, unpack(zadd, i, math.min(i + 999, #zadd)))
  end
  return earliest
end

-- read_due reads the entries of the expiry set k_exp due by now, at most RECONCILE_BATCH of
-- them with their expiries, and the next one after them, and checks their expiries. It returns
-- them and whether it made the set again, or false and the error reply of a malformed expiry
-- or entry. The scripts call it when the meta says an expiry is due: both empty in a tenant
-- with a version (seq0 > 0), the set is empty, or was lost alone (evicted), and is then made
-- again from the entries of k_state (restore_exp, which fails on a malformed entry before it
-- writes) and read again. Made again, the tenant's keys need their Redis expiry.
local function read_due(k_state, k_exp, now, seq0)
  local due = redis.call('ZRANGEBYSCORE', k_exp, '-inf', now, 'WITHSCORES', 'LIMIT', 0, RECONCILE_BATCH)
  local nxt = redis.call('ZRANGE', k_exp, #due / 2, #due / 2, 'WITHSCORES')
  local restored = false
  if #due == 0 and #nxt == 0 and seq0 > 0 then
    local earliest, bad = restore_exp(k_state, k_exp, nil, true)
    if not earliest then
      return false, bad
    end
    if earliest < NEVER then
      restored = true
      due = redis.call('ZRANGEBYSCORE', k_exp, '-inf', now, 'WITHSCORES', 'LIMIT', 0, RECONCILE_BATCH)
      nxt = redis.call('ZRANGE', k_exp, #due / 2, #due / 2, 'WITHSCORES')
    end
  end
  local bad = check_due(due) or check_due(nxt)
  if bad then
    return false, bad
  end
  return due, nxt, restored
end

-- event_at returns the time of a stream entry read with XRANGE, or nil when the entry is not
-- one the scripts wrote: the trim drops such entries rather than failing on them.
local function event_at(entry)
  local a = entry[2][FIELD_AT_POS]
  if entry[2][FIELD_AT_POS - 1] == FIELD_AT and a and is_num(a) then
    return tonumber(a)
  end
  return nil
end

-- shrink_kexp returns when the keys of a tenant, alive until kexp, are to expire instead, or
-- nil: need is the latest expiry a write wrote, or its time, plus the retention ret, and kexp
-- is more than a retention past it. The keys live a retention past the latest expiry written,
-- and a write extends that; but when the entry of that expiry is gone (removed, or written
-- again with a shorter TTL) the state hash and the expiry set would live on long after it. So
-- when kexp is more than a retention past the latest expiry left in the expiry set k_exp too,
-- they expire a retention and a quarter after the later of the two instead. (The writes call
-- it only where kexp is that far ahead, so a tenant whose TTLs differ by less than a
-- retention never reads the set for it.)
local function shrink_kexp(k_exp, need, kexp, ret)
  local last = redis.call('ZRANGE', k_exp, -1, -1, 'WITHSCORES')
  local latest = tonumber(last[2] or '0')
  if not (latest and latest >= 0 and latest <= NEVER) then
    return nil -- junk, which the reads of the set report: the keys' expiry stays
  end
  need = math.max(need, latest + ret)
  if kexp <= need + ret then
    return nil
  end
  return need + math.floor(ret / 4)
end

-- stream_expiry returns the Redis expiry (ms) to give the events stream after a call at now
-- added events to it, or nil to keep the one it has, sexp (META_SEXP as HMGET read it: junk
-- counts as none, and is replaced): a retention ret after the events, with a quarter of the
-- retention as slack so that this is rare, unless sexp is at least a retention away. made
-- says the call made the stream (new, or gone: expired or evicted), which has no expiry yet.
-- The stream's expiry is its own, not the other keys', so that a tenant left alone with an
-- entry of a long TTL does not keep its events beyond the retention.
local function stream_expiry(sexp, made, now, ret)
  if made or not (sexp and is_num(sexp)) or tonumber(sexp) < now + ret then
    return now + ret + math.floor(ret / 4)
  end
  return nil
end

-- expire_keys gives the state hash and the expiry set of keys (a script's KEYS) the Redis
-- expiry at, and the stream sat, each unless nil.
local function expire_keys(keys, at, sat)
  if at then
    redis.call('PEXPIREAT', keys[KEY_STATE], at)
    redis.call('PEXPIREAT', keys[KEY_EXP], at)
  end
  if sat then
    redis.call('PEXPIREAT', keys[KEY_EVENTS], sat)
  end
end
