-- KEYS: record
-- ARGV: id tag now:n ttl error_type error_message
-- Ends a task as FAILURE whatever delivery holds it, for the one case the other scripts cannot
-- handle: one of them raised an error on this task's record (a Lua error, not an outage), and the
-- task must end with that error instead of being redelivered into it forever. So it reads only
-- the state and reindexes only when the record has what that takes. Acknowledges the message like
-- finish.lua. Returns the state the task was in.
ack(tag)
local f = redis.call('HMGET', record, F.state, F.name, F.submitted_at)
local state = f[1]
if not state then return 'missing' end
if TERMINAL[state] then return state end
if f[2] and tonumber(f[3]) then reindex(id, f[2], f[3], state, S.FAILURE) end
redis.call('HSET', record, F.state, S.FAILURE, F.finished_at, now, F.error_type, error_type,
  F.error_message, error_message)
redis.call('HDEL', record, F.lease_until, F.call)
redis.call('EXPIRE', record, ttl)
local w = redis.call('HMGET', record, F.celery_result, F.workflow, F.step)
celery_result(w[1], id, S.FAILURE, now, nil, error_type, error_message)
changed(record, id)
if w[2] then step_ended(w[2], w[3], S.FAILURE, nil, now, ttl) end
return state
