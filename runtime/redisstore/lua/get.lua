-- get.lua: ARGV 1 key. Returns the stored entry if it is live, else nil. Writes nothing.
local s = redis.call('HGET', K_STATE, ARGV[1])
if not s then
  return false
end
local _, _, _, e = parse(s)
if e <= now_ms() then
  return false
end
return s
