-- KEYS: record
-- ARGV: id tag now
-- The worker process running the delivery `tag` died and Celery put the message back on its
-- queue: the task waits again (its attempts stay counted).
local f = redis.call('HMGET', record, F.state, F.tag)
if f[1] ~= S.STARTED or f[2] ~= tag then return f[1] or 'missing' end
set_state(record, id, S.PENDING)
redis.call('HDEL', record, F.lease_until)
redis.call('HSET', record, F.queued_at, now)
changed(record, id)
return S.PENDING
