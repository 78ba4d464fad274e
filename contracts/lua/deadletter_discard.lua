-- KEYS: record. ARGV: id record_ttl. The record stays (FAILURE) until it expires.
local rec, id = KEYS[1], ARGV[1]
if redis.call('ZREM', DEADLETTER, id) == 0 then return 'missing' end
redis.call('EXPIRE', rec, ARGV[2])
return 'discarded'
