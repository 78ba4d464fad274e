-- KEYS: record. ARGV: id delivery now. The worker process running it died and Celery put the
-- message back on its queue: the task waits again (its attempts stay counted).
local rec, id = KEYS[1], ARGV[1]
local f = redis.call('HMGET', rec, 'state', 'delivery')
if f[1] ~= 'STARTED' or f[2] ~= ARGV[2] then return f[1] or 'missing' end
set_state(rec, id, 'PENDING')
redis.call('HDEL', rec, 'lease_until')
redis.call('HSET', rec, 'queued_at', ARGV[3])
return 'PENDING'
