-- KEYS: catalogue started seen
-- ARGV: entries now:n started_ms:n horizon:n
-- Publishes the task versions a worker serves (entries: a JSON object, registration field ->
-- spec JSON) and forgets versions no worker has published since `horizon`. A version keeps the
-- start time of the most recently started worker that publishes it, and when one last did
-- (contracts.catalogue.current reads both). Returns how many versions were forgotten.
for field, spec in pairs(cjson.decode(entries)) do
  redis.call('HSET', catalogue, field, spec)
  local before = tonumber(redis.call('HGET', started, field) or '0')
  if started_ms > before then
    redis.call('HSET', started, field, started_ms)
  end
  redis.call('HSET', seen, field, now)
end
local forgotten = 0
local seen_at = redis.call('HGETALL', seen)
for i = 1, #seen_at, 2 do
  if tonumber(seen_at[i + 1]) < horizon then
    redis.call('HDEL', catalogue, seen_at[i])
    redis.call('HDEL', started, seen_at[i])
    redis.call('HDEL', seen, seen_at[i])
    forgotten = forgotten + 1
  end
end
return forgotten
