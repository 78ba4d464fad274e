-- KEYS: none
-- ARGV: id now:n ttl
-- Cancels a workflow: its waiting steps never run, its running ones stop as a cancelled task
-- does, and it ends REVOKED. Returns {outcome, state before}: 'revoked' (also when it already
-- was), 'terminal' (it ended otherwise), 'expired' or 'missing'.
local wf = workflow_key(id)
local f = redis.call('HMGET', wf, W.state, W.steps)
if not f[1] then
  if redis.call('ZSCORE', K.workflows, id) then return {'expired', ''} end
  return {'missing', ''}
end
if f[1] == S.REVOKED then return {'revoked', f[1]} end
if TERMINAL[f[1]] then return {'terminal', f[1]} end
redis.call('HSET', wf, W.cancelled, 1)
for n = 0, tonumber(f[2]) - 1 do
  local task = redis.call('HGET', wf, step_field(n, P.id))
  local record = record_key(task)
  local state = redis.call('HGET', record, F.state)
  if state and not TERMINAL[state] then revoke(record, task, now, ttl) end
end
return {'revoked', f[1]}
