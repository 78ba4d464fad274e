-- KEYS: record
-- ARGV: id ttl token
-- The record stays (FAILURE) until it expires.
if redis.call('ZREM', K.deadletter, id) == 0 then
  -- Sent again after a client timeout: the first sending discarded it.
  if token ~= '' and redis.call('HGET', record, F.call) == token then return 'discarded' end
  return 'missing'
end
redis.call('HSET', record, F.call, token)
redis.call('EXPIRE', record, ttl)
return 'discarded'
