-- get.lua: ARGV GET_KEY the key. Returns the stored entry if it is live, else nil. Writes
-- nothing.
local s = redis.call('HGET', K_STATE, ENTRY_PREFIX .. ARGV[GET_KEY])
if not s or parse(s).e <= now_ms() then
  return false
end
return s
