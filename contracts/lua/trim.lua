-- KEYS: listing indexes. ARGV: cutoff ms. Forgets tasks submitted before the tombstone horizon.
local removed = 0
for _, key in ipairs(KEYS) do
  removed = removed + redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[1])
end
return removed
