-- KEYS: record, then the queue's lists (for the backlog limit).
-- ARGV: id name queue priority args now idem idem_ttl list payload due max_backlog
-- The record has no TTL until the task ends: a task that waits long is never forgotten.
local rec = KEYS[1]
local id, name, now, idem = ARGV[1], ARGV[2], ARGV[6], ARGV[7]
local due, max_backlog = tonumber(ARGV[11]), tonumber(ARGV[12])
local idem_key = PREFIX .. 'idem:' .. idem
if idem ~= '' then
  local existing = redis.call('GET', idem_key)
  if existing then return {'existing', existing} end
end
local ready = 0
for i = 2, #KEYS do ready = ready + redis.call('LLEN', KEYS[i]) end
if ready >= max_backlog then return {'full', tostring(ready)} end
if idem ~= '' then
  redis.call('SET', idem_key, id, 'EX', ARGV[8])
  redis.call('HSET', rec, 'idempotency_key', idem)
end
redis.call('HSET', rec, 'name', name, 'queue', ARGV[3], 'priority', ARGV[4], 'args', ARGV[5],
  'state', 'PENDING', 'submitted_at', now, 'attempts', 0, 'retries', 0, 'deliveries', 0)
if due > 0 then redis.call('HSET', rec, 'due_at', due) end
redis.call('ZADD', TASKS, now, id)
redis.call('ZADD', TASKS .. ':name:' .. name, now, id)
redis.call('ZADD', state_index('PENDING'), now, id)
redis.call('ZADD', name_state_index(name, 'PENDING'), now, id)
enqueue(id, ARGV[9], ARGV[10], due)
return {'created', id}
