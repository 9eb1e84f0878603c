-- get.lua: KEYS the tenant's KEY_STATE alone, ARGV GET_KEY the key. Returns {the stored
-- entry, the tenant's epoch} if the key is live, else nil; a malformed entry or epoch is an
-- error. Writes nothing. It stands alone, without lib.lua, as write.lua does.
local m = redis.call('HMGET', KEYS[KEY_STATE], ENTRY_PREFIX .. ARGV[GET_KEY], META_EPOCH)
local s = m[1]
if not s then
  return false
end
local p1, err, p3, p4 = parse_entry(ARGV[GET_KEY], s)
if not p1 then
  return err
end
local bad = check_meta({m[2]})
if bad then
  return bad
end
local t = redis.call('TIME')
if tonumber(string.sub(s, p3 + 1, p4 - 1)) <= tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
  return false
end
return {s, m[2]}
