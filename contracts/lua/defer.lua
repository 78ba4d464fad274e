-- KEYS: record. ARGV: id list payload due. Parks a copy of a running task's message until
-- the running execution's lease ends; then the start script decides again.
if redis.call('HGET', KEYS[1], 'state') ~= 'STARTED' then return 'gone' end
enqueue(ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
return 'deferred'
