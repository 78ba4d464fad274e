-- KEYS: record. ARGV: id delivery now lease_until max_deliveries worker dead_ttl pid.
-- Decides what this delivery does: {'run', attempts, priority}, {'skip', why},
-- {'defer', lease_until} or {'deadletter', deliveries}.
local rec, id, delivery, now = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local f = redis.call('HMGET', rec, 'state', 'delivery', 'lease_until')
local state = f[1]
if not state then return {'skip', 'missing'} end
if TERMINAL[state] then return {'skip', state} end
-- A live lease means an execution is running now, and this is a second copy of its message
-- (kombu puts unacknowledged messages back when a connection drops). It must neither run
-- alongside nor be dropped (the running one may still die): it waits until the lease ends.
-- A lost pool process or a dead worker leaves no live lease (requeued.lua clears it; the
-- visibility timeout outlasts it).
if state == 'STARTED' and tonumber(f[3] or '0') > tonumber(now) then
  return {'defer', f[3], redis.call('HGET', rec, 'priority')}
end
local deliveries = redis.call('HINCRBY', rec, 'deliveries', 1)
if deliveries > tonumber(ARGV[5]) + 1 then
  set_state(rec, id, 'FAILURE')
  redis.call('HSET', rec, 'finished_at', now, 'error_type', 'DeadLettered', 'error_message',
    'delivered ' .. (deliveries - 1) .. ' times without finishing (the worker process died ' ..
    'each time); moved to the dead-letter list')
  redis.call('HDEL', rec, 'lease_until')
  redis.call('ZADD', DEADLETTER, now, id)
  redis.call('EXPIRE', rec, ARGV[7])
  return {'deadletter', deliveries - 1}
end
local attempts = redis.call('HINCRBY', rec, 'attempts', 1)
set_state(rec, id, 'STARTED')
redis.call('HSET', rec, 'started_at', now, 'delivery', delivery, 'lease_until', ARGV[4],
  'worker', ARGV[6], 'pid', ARGV[8])
return {'run', attempts, redis.call('HGET', rec, 'priority')}
