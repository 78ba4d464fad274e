-- KEYS: none
-- ARGV: now limit:n
-- Pushes due delayed messages onto their queue lists, stamping the publish time, in one atomic
-- step: a message is either still delayed or queued, never lost or doubled. Returns how many.
local ids = redis.call('ZRANGEBYSCORE', K.delayed, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local m = redis.call('HGET', K.delayed_messages, id)
  if m then
    local nl = string.find(m, '\n', 1, true)
    redis.call('LPUSH', string.sub(m, 1, nl - 1), restamp(string.sub(m, nl + 1), now))
  end
  redis.call('ZREM', K.delayed, id)
  redis.call('HDEL', K.delayed_messages, id)
end
return #ids
