-- get.lua: ARGV 1 key. Returns the stored entry if it is live, else nil. Writes nothing.
local s = redis.call('HGET', K_STATE, 'k' .. ARGV[1])
if not s or parse(s).e <= now_ms() then
  return false
end
return s
