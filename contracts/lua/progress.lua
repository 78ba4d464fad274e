-- KEYS: record. ARGV: delivery progress_json. Returns the state; anything but STARTED means stop.
local f = redis.call('HMGET', KEYS[1], 'state', 'delivery')
if f[1] ~= 'STARTED' then return f[1] or 'missing' end
if f[2] ~= ARGV[1] then return 'superseded' end
redis.call('HSET', KEYS[1], 'progress', ARGV[2])
return 'STARTED'
