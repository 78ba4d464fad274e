-- KEYS: record. ARGV: id list payload now. Back to PENDING with a fresh delivery count (and, like
-- every waiting task, no TTL).
local rec, id = KEYS[1], ARGV[1]
if not redis.call('ZSCORE', DEADLETTER, id) then return 'missing' end
redis.call('ZREM', DEADLETTER, id)
set_state(rec, id, 'PENDING')
redis.call('HSET', rec, 'deliveries', 0, 'queued_at', ARGV[4])
redis.call('HDEL', rec, 'finished_at', 'error_type', 'error_message', 'traceback', 'lease_until')
redis.call('PERSIST', rec)
enqueue(id, ARGV[2], ARGV[3], 0)
return 'requeued'
