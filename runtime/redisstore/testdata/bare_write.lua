-- bare_write.lua: the baseline of BenchmarkWriteScript, with write.lua's keys and arguments:
-- the commands a batch of upserts or touches needs (HMGET, TIME, XADD with the MaxEvents trim,
-- HSET, ZADD, PUBLISH) with as little Lua as runs them. It writes the stored entries back as
-- they are and one event per operation, so that write.lua can go on after it on the same
-- tenant. Not a store: no checks, no conditions, no expiry; every operation takes the first
-- one's TTL.
local n = (#ARGV - WRITE_HEAD_ARGS) / WRITE_ARGS_PER_OP
local fields = {META_EPOCH, META_SEQ}
for i = 1, n do
  local a = WRITE_HEAD_ARGS + (i - 1) * WRITE_ARGS_PER_OP
  fields[2 + i] = ENTRY_PREFIX .. ARGV[a + OP_KEY]
end
local m = redis.call('HMGET', KEYS[KEY_STATE], unpack(fields))
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s, e_s = string.format('%d', now), string.format('%d', now + tonumber(ARGV[WRITE_HEAD_ARGS + OP_TTL]))
local seq = tonumber(m[2]) + n
local seq_s = string.format('%d', seq)
local put, zadd, evs, out = {META_SEQ, seq_s}, {}, {}, {}
for i = 1, n do
  local a = WRITE_HEAD_ARGS + (i - 1) * WRITE_ARGS_PER_OP
  local key = ARGV[a + OP_KEY]
  put[2 * i + 1], put[2 * i + 2] = fields[2 + i], m[2 + i]
  zadd[2 * i - 1], zadd[2 * i] = e_s, key
  evs[i] = ' t ' .. key .. ' 0 ' .. e_s .. ' 0:'
  out[5 * i - 4], out[5 * i - 3], out[5 * i - 2], out[5 * i - 1], out[5 * i] = 1, seq_s, now_s, now_s, e_s
end
local events = table.concat(evs)
redis.call('XADD', KEYS[KEY_EVENTS], 'MINID', '~', string.format('%d', seq - tonumber(ARGV[ARG_MAX_EVENTS]) + 1) .. '-0',
  seq_s .. '-' .. string.format('%d', n - 1), FIELD_EPOCH, m[1], FIELD_AT, now_s, FIELD_EVENTS, events)
redis.call('HSET', KEYS[KEY_STATE], unpack(put))
redis.call('ZADD', KEYS[KEY_EXP], unpack(zadd))
redis.call('PUBLISH', KEYS[KEY_EVENTS], m[1] .. ' ' .. seq_s .. ' 0 ' .. now_s .. events)
return out
