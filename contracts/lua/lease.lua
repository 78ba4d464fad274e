-- KEYS: lease
-- ARGV: holder ttl:n
-- Takes or extends the scheduler's lease for `holder` for `ttl` ms (ttl 0 gives it up): 1 when
-- `holder` holds it now, 0 when another replica does.
local current = redis.call('GET', lease)
if current and current ~= holder then return 0 end
if ttl == 0 then
  redis.call('DEL', lease)
  return 0
end
redis.call('SET', lease, holder, 'PX', ttl)
return 1
