-- KEYS: record. ARGV: id delivery now lease_until max_deliveries worker dead_ttl pid.
-- Decides what this delivery does: {'run', attempts, priority}, {'skip', why},
-- {'defer', lease_until, priority} or {'deadletter', deliveries}.
-- Runs once per delivery: the record is read once and written once on the common path.
local rec, id, delivery, now = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local f = redis.call('HMGET', rec, 'state', 'lease_until', 'deliveries', 'attempts', 'priority',
  'name', 'submitted_at')
local state, priority = f[1], f[5]
if not state then return {'skip', 'missing'} end
if TERMINAL[state] then return {'skip', state} end
-- A live lease means an execution is running now, and this is a second copy of its message
-- (kombu puts unacknowledged messages back when a connection drops). It must neither run
-- alongside nor be dropped (the running one may still die): it waits until the lease ends.
-- A lost pool process or a dead worker leaves no live lease (requeued.lua clears it; the
-- visibility timeout outlasts it).
if state == 'STARTED' and tonumber(f[2] or '0') > tonumber(now) then
  return {'defer', f[2], priority}
end
local deliveries = tonumber(f[3] or '0') + 1
if deliveries > tonumber(ARGV[5]) + 1 then
  set_state(rec, id, 'FAILURE')
  redis.call('HSET', rec, 'deliveries', deliveries, 'finished_at', now,
    'error_type', 'DeadLettered', 'error_message',
    'delivered ' .. (deliveries - 1) .. ' times without finishing (the worker process died ' ..
    'each time); moved to the dead-letter list')
  redis.call('HDEL', rec, 'lease_until')
  redis.call('ZADD', DEADLETTER, now, id)
  redis.call('EXPIRE', rec, ARGV[7])
  return {'deadletter', deliveries - 1}
end
local attempts = tonumber(f[4] or '0') + 1
if state ~= 'STARTED' then reindex(id, f[6], f[7], state, 'STARTED') end
redis.call('HSET', rec, 'state', 'STARTED', 'deliveries', deliveries, 'attempts', attempts,
  'started_at', now, 'delivery', delivery, 'lease_until', ARGV[4], 'worker', ARGV[6],
  'pid', ARGV[8])
return {'run', attempts, priority}
