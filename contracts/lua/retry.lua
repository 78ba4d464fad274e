-- KEYS: record
-- ARGV: id tag due:n list message error_type error_message
-- The execution holding the lease failed transiently: the task waits in RETRY until `due`,
-- then its new message is queued. Returns the state afterwards.
local f = redis.call('HMGET', record, F.state, F.tag)
if f[1] ~= S.STARTED or f[2] ~= tag then return f[1] or 'missing' end
set_state(record, id, S.RETRY)
redis.call('HINCRBY', record, F.retries, 1)
redis.call('HSET', record, F.deliveries, 0, F.due_at, due, F.error_type, error_type,
  F.error_message, error_message)
redis.call('HDEL', record, F.lease_until)
enqueue(id, list, message, due)
changed(record, id)
return S.RETRY
