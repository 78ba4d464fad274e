-- KEYS: record. ARGV: id delivery state now ttl result error_type error_message traceback tag.
-- Only the delivery that holds the lease finishes a task; a cancel that came first stands.
-- `tag`, the message's kombu delivery tag, acknowledges the message in the same step, whatever
-- the outcome, as Celery then would: a record never ends while its message can still be
-- redelivered, and the worker's main process saves its own round trip (worker/broker.py). A
-- delivery that does not hold the lease (cancelled, superseded) is acknowledged too and its
-- record left as it is; Celery would acknowledge it anyway (Ignore).
local rec, id, new, now, tag = KEYS[1], ARGV[1], ARGV[3], ARGV[4], ARGV[10]
if tag ~= '' then
  redis.call('ZREM', UNACKED_INDEX, tag)
  redis.call('HDEL', UNACKED, tag)
end
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
