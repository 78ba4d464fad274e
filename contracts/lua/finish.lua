-- KEYS: record
-- ARGV: id tag state now:n ttl result error_type error_message traceback
-- Ends the execution that holds the lease (the delivery `tag`) as SUCCESS or FAILURE; a cancel
-- that came first stands. Returns the task's state afterwards. The message is acknowledged here,
-- whatever the outcome, as Celery then would: a record never ends while its message can still be
-- redelivered, and for a success the worker's main process saves its own round trip
-- (worker/broker.py). A delivery that does not hold the lease (cancelled, superseded) is
-- acknowledged too and its record left as it is: Celery would acknowledge it anyway (Ignore).
-- Sent twice (a client timeout), the second finds the state the first left, and says so. A
-- workflow step's end moves its workflow on here too (step_ended).
ack(tag)
local f = redis.call('HMGET', record, F.state, F.tag, F.name, F.submitted_at, F.celery_result,
  F.workflow, F.step)
if f[1] ~= S.STARTED or f[2] ~= tag then return f[1] or 'missing' end
reindex(id, f[3], f[4], S.STARTED, state)
if state == S.SUCCESS then
  redis.call('HSET', record, F.state, state, F.finished_at, now, F.result, result)
  redis.call('HDEL', record, F.lease_until, F.args, F.error_type, F.error_message, F.traceback,
    F.call)
else
  redis.call('HSET', record, F.state, state, F.finished_at, now, F.error_type, error_type,
    F.error_message, error_message)
  if traceback ~= '' then redis.call('HSET', record, F.traceback, traceback) end
  redis.call('HDEL', record, F.lease_until, F.call)
end
redis.call('EXPIRE', record, ttl)
celery_result(f[5], id, state, now, result, error_type, error_message)
changed(record, id)
if f[6] then step_ended(f[6], f[7], state, result, now, ttl) end
return state
