-- KEYS: record
-- ARGV: id tag now:n lease_until:n max_deliveries:n worker dead_ttl pid token
-- Decides what this delivery of the task's message (kombu's delivery tag `tag`) does:
-- {'run', attempt, priority[, argument, value]}, {'skip', why}, {'defer', lease_until, priority}
-- or {'deadletter', deliveries}; a workflow step that takes earlier steps' results runs with
-- them as `argument` (`value` JSON, read now: they are in its workflow since it was queued). Runs once per delivery: the record is read once and written once on
-- the common path (so it reindexes by hand instead of calling set_state).
local f = redis.call('HMGET', record, F.state, F.lease_until, F.deliveries, F.attempts,
  F.priority, F.name, F.submitted_at, F.call, F.workflow, F.step, F.input)
local state, priority = f[1], f[5]
if not state then return {'skip', 'missing'} end
if TERMINAL[state] then return {'skip', state} end
-- The same call, re-sent by a client that timed out waiting for the first reply: it started
-- the execution, so it answers 'run' again (the lease check below would answer 'defer').
local function run(attempt)
  if not f[11] then return {'run', attempt, priority} end
  local wf, input = workflow_key(f[9]), cjson.decode(f[11])
  local function render(from)
    if type(from) == 'number' then
      return redis.call('HGET', wf, step_field(from, P.result)) or 'null'
    end
    local parts = {}
    for i, each in ipairs(from) do parts[i] = render(each) end
    return '[' .. table.concat(parts, ',') .. ']'
  end
  return {'run', attempt, priority, input.field, render(input.from)}
end
if state == S.STARTED and f[8] == token then return run(f[4]) end
-- A live lease means an execution is running now, and this is a second copy of its message
-- (kombu puts unacknowledged messages back when a connection drops). It must neither run
-- alongside nor be dropped (the running one may still die): it waits until the lease ends.
-- A lost pool process or a dead worker leaves no live lease (requeued.lua clears it; the
-- visibility timeout outlasts it).
if state == S.STARTED and tonumber(f[2] or '0') > now then
  return {'defer', f[2], priority}
end
local deliveries = tonumber(f[3] or '0') + 1
if deliveries > max_deliveries + 1 then
  set_state(record, id, S.FAILURE)
  local why = 'delivered ' .. (deliveries - 1) .. ' times without finishing (each time its ' ..
    'worker process died, or a shutdown cut it off and requeued it); moved to the dead-letter list'
  redis.call('HSET', record, F.deliveries, deliveries, F.finished_at, now,
    F.error_type, 'DeadLettered', F.error_message, why)
  redis.call('HDEL', record, F.lease_until)
  redis.call('ZADD', K.deadletter, now, id)
  redis.call('EXPIRE', record, dead_ttl)
  celery_result(redis.call('HGET', record, F.celery_result), id, S.FAILURE, now, nil,
    'DeadLettered', why)
  changed(record, id)
  if f[9] then step_ended(f[9], f[10], S.FAILURE, nil, now, dead_ttl) end
  return {'deadletter', deliveries - 1}
end
local attempts = tonumber(f[4] or '0') + 1
if state ~= S.STARTED then reindex(id, f[6], f[7], state, S.STARTED) end
redis.call('HSET', record, F.state, S.STARTED, F.deliveries, deliveries, F.attempts, attempts,
  F.started_at, now, F.tag, tag, F.lease_until, lease_until, F.worker, worker, F.pid, pid,
  F.call, token)
changed(record, id)
return run(attempts)
