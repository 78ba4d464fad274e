-- KEYS: index
-- ARGV: max_score skip:n limit:n scan_cap:n
-- Newest first from (max_score, skip entries already returned at that score). Entries whose
-- record expired are dropped from filtered indexes (the full index keeps them as tombstones).
local score = max_score
local items, scanned = {}, 0
while #items < limit and scanned < scan_cap do
  local batch = redis.call('ZRANGE', index, score, '-inf', 'BYSCORE', 'REV', 'LIMIT', skip,
    limit - #items, 'WITHSCORES')
  if #batch == 0 then return {'', 0, items} end
  for i = 1, #batch, 2 do
    local id, s = batch[i], batch[i + 1]
    scanned = scanned + 1
    local fields = redis.call('HGETALL', record_key(id))
    local kept = #fields > 0 or index == K.tasks
    if s ~= score then score, skip = s, 0 end
    if kept then skip = skip + 1 end
    if #fields > 0 then
      items[#items + 1] = {id, fields}
    elseif index ~= K.tasks then
      redis.call('ZREM', index, id)
    end
  end
end
local more = redis.call('ZRANGE', index, score, '-inf', 'BYSCORE', 'REV', 'LIMIT', skip, 1)
if #more == 0 then return {'', 0, items} end
return {score, skip, items}
