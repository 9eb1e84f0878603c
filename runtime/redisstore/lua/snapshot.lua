-- snapshot.lua: ARGV 1 epoch candidate, 2 retention ms, 3 key prefix.
-- Returns {epoch, version, now, {key, stored, key, stored, ...}}: every stored entry whose key
-- has the prefix, and the position of the same instant. The caller drops the entries that
-- expire at or before now and sorts by key (Lua compares strings by locale).
local ctx = open(ARGV[1], tonumber(ARGV[2]), 0)
local all = redis.call('HGETALL', K_STATE)
local prefix = ARGV[3]
if prefix ~= '' then
  local n = #prefix
  local out = {}
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, n) == prefix then
      out[#out + 1] = all[i]
      out[#out + 1] = all[i + 1]
    end
  end
  all = out
end
return {ctx.epoch, ctx.seq, ctx.now, all}
