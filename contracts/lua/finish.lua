-- KEYS: record. ARGV: id delivery state now ttl result error_type error_message traceback.
-- Only the delivery that holds the lease finishes a task; a cancel that came first stands.
local rec, id = KEYS[1], ARGV[1]
local f = redis.call('HMGET', rec, 'state', 'delivery')
if f[1] ~= 'STARTED' or f[2] ~= ARGV[2] then return f[1] or 'missing' end
set_state(rec, id, ARGV[3])
redis.call('HDEL', rec, 'lease_until')
if ARGV[3] == 'SUCCESS' then
  redis.call('HSET', rec, 'finished_at', ARGV[4], 'result', ARGV[6])
  redis.call('HDEL', rec, 'args', 'error_type', 'error_message', 'traceback')
else
  redis.call('HSET', rec, 'finished_at', ARGV[4], 'error_type', ARGV[7], 'error_message', ARGV[8])
  if ARGV[9] ~= '' then redis.call('HSET', rec, 'traceback', ARGV[9]) end
end
redis.call('EXPIRE', rec, ARGV[5])
return ARGV[3]
