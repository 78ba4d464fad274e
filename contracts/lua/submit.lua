-- KEYS: record lists...
-- ARGV: id name queue priority args now idem idem_ttl list message due:n max_backlog:n schedule
-- Queues a task and writes its record in one step: never one without the other. The record has
-- no TTL until the task ends: a task that waits long is never forgotten. Returns
-- {'created', id}, {'existing', id of the task the idempotency key names}, {'conflict', that id}
-- when the key was used for another task or other arguments, or {'full', ready}. The key keeps
-- a digest of what it was used for (the record drops a success's arguments).
-- The new task's id is the call's token: a call the client re-sends after a timeout finds the
-- record its first sending wrote, and answers as that one did instead of queueing a copy.
if redis.call('EXISTS', record) == 1 then return {'created', id} end
local digest = redis.sha1hex(name .. '\n' .. args)
if idem ~= '' then
  local existing = redis.call('GET', idempotency_key(idem))
  if existing then
    local other, used_for = string.match(existing, '^(%S+) (%x+)$')
    if not other then return {'existing', existing} end
    if used_for ~= digest then return {'conflict', other} end
    return {'existing', other}
  end
end
local ready = 0
for _, list in ipairs(lists) do ready = ready + redis.call('LLEN', list) end
if ready >= max_backlog then return {'full', tostring(ready)} end
if idem ~= '' then
  redis.call('SET', idempotency_key(idem), id .. ' ' .. digest, 'EX', idem_ttl)
  redis.call('HSET', record, F.idempotency_key, idem)
end
create_record(record, id, name, queue, priority, args, now, due, S.PENDING, true)
if schedule ~= '' then
  redis.call('HSET', record, F.schedule, schedule)
  redis.call('ZADD', schedule_index(schedule), now, id)
end
enqueue(id, list, message, due)
changed(record, id)
return {'created', id}
