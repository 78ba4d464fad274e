-- KEYS: record. ARGV: id delivery state now ttl result error_type error_message traceback.
-- Only the delivery that holds the lease finishes a task; a cancel that came first stands.
local rec, id, new, now = KEYS[1], ARGV[1], ARGV[3], ARGV[4]
local f = redis.call('HMGET', rec, 'state', 'delivery', 'name', 'submitted_at')
if f[1] ~= 'STARTED' or f[2] ~= ARGV[2] then return f[1] or 'missing' end
reindex(id, f[3], f[4], 'STARTED', new)
if new == 'SUCCESS' then
  redis.call('HSET', rec, 'state', new, 'finished_at', now, 'result', ARGV[6])
  redis.call('HDEL', rec, 'lease_until', 'args', 'error_type', 'error_message', 'traceback')
else
  redis.call('HSET', rec, 'state', new, 'finished_at', now, 'error_type', ARGV[7],
    'error_message', ARGV[8])
  if ARGV[9] ~= '' then redis.call('HSET', rec, 'traceback', ARGV[9]) end
  redis.call('HDEL', rec, 'lease_until')
end
redis.call('EXPIRE', rec, ARGV[5])
return new
