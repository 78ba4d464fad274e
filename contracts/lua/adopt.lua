-- KEYS: record
-- ARGV: id name queue priority args now:n due:n list message tag error_type error_message known:n ttl
-- Takes in a task that a Celery producer queued itself (send_task, delay, apply_async): it has
-- no record, and its message is not one of ours. The task gets a record under its own id and
-- one of our messages (next in its list, or delayed until its countdown), and from there runs as
-- any task does; or, refused (`error_type`: an unknown name, invalid arguments), it ends FAILURE
-- at once with why. Either way it ends in Celery's result too (F.celery_result), and the
-- producer's message is acknowledged here. A second delivery of that message finds the record
-- (or the tombstone of an expired one) and changes nothing. `known` is 0 for a name the
-- catalogue lacks: no listing by that name. Returns 'adopted', 'refused', 'known' or 'expired'.
ack(tag)
if redis.call('EXISTS', record) == 1 then return 'known' end
if redis.call('ZSCORE', K.tasks, id) then return 'expired' end
if error_type ~= '' then
  create_record(record, id, name, queue, priority, args, now, 0, S.FAILURE, known == 1)
  redis.call('HSET', record, F.finished_at, now, F.error_type, error_type,
    F.error_message, error_message, F.celery_result, ttl)
  redis.call('EXPIRE', record, ttl)
  celery_result(ttl, id, S.FAILURE, now, nil, error_type, error_message)
  changed(record, id)
  return 'refused'
end
create_record(record, id, name, queue, priority, args, now, due, S.PENDING, true)
redis.call('HSET', record, F.celery_result, ttl)
if due > 0 then
  enqueue(id, list, message, due)
else
  -- Where the producer's message was: next to be served.
  redis.call('RPUSH', list, message)
end
changed(record, id)
return 'adopted'
