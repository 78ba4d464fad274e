-- KEYS: record
-- ARGV: id now:n ttl
-- Returns {outcome, state before}: 'revoked' (also for a task already revoked, so that a
-- cancel sent twice answers the same), 'terminal' (it ended otherwise), 'expired' or 'missing'.
local state = redis.call('HGET', record, F.state)
if not state then
  if redis.call('ZSCORE', K.tasks, id) then return {'expired', ''} end
  return {'missing', ''}
end
if state == S.REVOKED then return {'revoked', state} end
if TERMINAL[state] then return {'terminal', state} end
return {'revoked', revoke(record, id, now, ttl)}
