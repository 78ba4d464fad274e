-- ARGV: now limit. Pushes due delayed messages onto their queue lists, stamping the publish
-- time, in one atomic step: a message is either still delayed or queued, never lost or doubled.
local now = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local m = redis.call('HGET', DELAYED_MSG, id)
  if m then
    local nl = string.find(m, '\n', 1, true)
    local payload = string.gsub(string.sub(m, nl + 1), '"kt_published_at":%s*%d+',
      '"kt_published_at":' .. now, 1)
    redis.call('LPUSH', string.sub(m, 1, nl - 1), payload)
  end
  redis.call('ZREM', DELAYED, id)
  redis.call('HDEL', DELAYED_MSG, id)
end
return #ids
