-- KEYS: record. ARGV: id delivery due list payload error_type error_message.
local rec, id = KEYS[1], ARGV[1]
local f = redis.call('HMGET', rec, 'state', 'delivery')
if f[1] ~= 'STARTED' or f[2] ~= ARGV[2] then return f[1] or 'missing' end
set_state(rec, id, 'RETRY')
redis.call('HINCRBY', rec, 'retries', 1)
redis.call('HSET', rec, 'deliveries', 0, 'due_at', ARGV[3], 'error_type', ARGV[6],
  'error_message', ARGV[7])
redis.call('HDEL', rec, 'lease_until')
enqueue(id, ARGV[4], ARGV[5], tonumber(ARGV[3]))
return 'RETRY'
