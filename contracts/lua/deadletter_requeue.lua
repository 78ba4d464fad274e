-- KEYS: record
-- ARGV: id list message now token
-- Back to PENDING with a fresh delivery count (and, like every waiting task, no TTL).
if not redis.call('ZSCORE', K.deadletter, id) then
  -- Sent again after a client timeout: the first sending requeued it.
  if token ~= '' and redis.call('HGET', record, F.call) == token then return 'requeued' end
  return 'missing'
end
redis.call('ZREM', K.deadletter, id)
set_state(record, id, S.PENDING)
redis.call('HSET', record, F.deliveries, 0, F.queued_at, now, F.call, token)
redis.call('HDEL', record, F.finished_at, F.error_type, F.error_message, F.traceback,
  F.lease_until)
redis.call('PERSIST', record)
enqueue(id, list, message, 0)
changed(record, id)
return 'requeued'
