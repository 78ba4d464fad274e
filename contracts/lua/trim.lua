-- KEYS: indexes...
-- ARGV: cutoff budget:n
-- Forgets tasks submitted before the tombstone horizon whose record is gone; a task still
-- waiting or kept keeps its place. Returns how many entries went.
local removed = 0
for _, index in ipairs(indexes) do
  local offset = 0
  while budget > 0 do
    local ids = redis.call('ZRANGE', index, '(' .. cutoff, '-inf', 'BYSCORE', 'REV', 'LIMIT',
      offset, math.min(budget, 1000))
    if #ids == 0 then break end
    budget = budget - #ids
    for _, id in ipairs(ids) do
      if redis.call('EXISTS', record_key(id)) == 0 then
        redis.call('ZREM', index, id)
        removed = removed + 1
      else
        offset = offset + 1
      end
    end
  end
end
return removed
