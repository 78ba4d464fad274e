-- KEYS: record. ARGV: id now record_ttl. Returns {outcome, state before}.
local rec, id = KEYS[1], ARGV[1]
local state = redis.call('HGET', rec, 'state')
if not state then
  if redis.call('ZSCORE', TASKS, id) then return {'expired', ''} end
  return {'missing', ''}
end
if TERMINAL[state] then return {'terminal', state} end
set_state(rec, id, 'REVOKED')
redis.call('HSET', rec, 'finished_at', ARGV[2])
redis.call('HDEL', rec, 'lease_until')
redis.call('EXPIRE', rec, ARGV[3])
redis.call('ZREM', DELAYED, id)
redis.call('HDEL', DELAYED_MSG, id)
return {'revoked', state}
