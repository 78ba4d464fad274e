-- KEYS: none
-- ARGV: id now:n steps result backlog tombstone_ms:n
-- Writes a workflow and the record of each of its steps, queues the steps that wait for none and
-- keeps the others' messages until their earlier steps end (step_ended), all in one step.
-- `steps` is JSON, one object per step (api/workflows.py, WorkflowPlan.steps); `backlog` lists
-- each queue the steps go to with its lists and its limit. Returns {'created'} or
-- {'full', queue, ready} (nothing written).
for _, q in ipairs(cjson.decode(backlog)) do
  local ready = 0
  for _, list in ipairs(q.lists) do ready = ready + redis.call('LLEN', list) end
  if ready >= q.max then return {'full', q.queue, tostring(ready)} end
end
local wf = workflow_key(id)
if redis.call('EXISTS', wf) == 1 then return {'created'} end  -- a re-sent call
local plan = cjson.decode(steps)
redis.call('HSET', wf, W.state, S.PENDING, W.submitted_at, now, W.steps, #plan, W.open, #plan,
  W.result, result)
for i, step in ipairs(plan) do
  local n = i - 1
  local record = record_key(step.id)
  create_record(record, step.id, step.name, step.queue, step.priority, step.args, now, 0,
    S.PENDING, true)
  redis.call('HSET', record, F.workflow, id, F.step, n)
  if step.input ~= '' then redis.call('HSET', record, F.input, step.input) end
  redis.call('HSET', wf, step_field(n, P.id), step.id, step_field(n, P.name), step.name,
    step_field(n, P.next), step.next, step_field(n, P.wait), step.wait)
  if step.wait > 0 then
    redis.call('HSET', record, F.waiting, 1)
    redis.call('HSET', workflow_messages_key(id), n, step.list .. '\n' .. step.message)
  else
    redis.call('LPUSH', step.list, step.message)
  end
  changed(record, step.id)
end
redis.call('ZADD', K.workflows, now, id)
redis.call('ZREMRANGEBYSCORE', K.workflows, '-inf', now - tombstone_ms)
return {'created'}
